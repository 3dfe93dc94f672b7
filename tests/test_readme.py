"""Every command and code block of README.md and docs/*.md runs here, so the docs cannot rot: plot, inspect,
sweep, reproduce --list, the launch scripts' dry runs and the orbax snippet as written; each training command
with --dry_run (its config and data checked, nothing written), and those whose workdirs the docs go on to plot
or inspect for real with tiny overrides appended. A command that no rule here covers fails the test."""
import contextlib
import fcntl
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import CLI_ENV, ROOT
from dlgrok import inspect as inspect_cli
from dlgrok import main as main_cli
from dlgrok import cohorts, plot, reproduce, sweep, train

DOCS = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
DATA = os.path.join(ROOT, "..", "shared", "data")
# appended to a training command whose workdir the docs plot or inspect: seconds instead of hours
TINY = ["--config.steps=20", "--config.width=32", "--config.heads=2", "--config.seeds=1", "--config.eval_points=3",
        "--config.p=11", "--config.op=x+y", "--config.batch_size=32"]
INSTALL = ("python3 -m venv", ". .venv/bin/activate", "pip install", "python -m pytest")


def doc_commands(path):
  """(kind, text) of every command in `path`: 'sh' lines of fenced shell blocks (comments dropped, `&&` chains
  split), 'python' blocks, and 'sh' inline code in prose and tables that starts like a command."""
  text = open(path).read()
  out = []
  for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
    if lang not in ("", "sh", "bash", "python"):  # ```text: a picture, not commands
      continue
    if lang == "python":
      out.append(("python", body))
      continue
    for line in body.replace("\\\n", " ").splitlines():
      line = re.split(r"\s+#\s", line)[0].strip()
      out += [("sh", part.strip()) for part in line.split(" && ") if part.strip() and not line.startswith("#")]
  prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
  out += [("sh", c) for c in re.findall(r"`((?:python -m dlgrok\.|bash launch/)[^`]*)`", prose)]
  synopsis = re.compile(r"<\w+>")  # a usage line with placeholders, not a command
  return [c for c in out if not c[1].startswith(INSTALL) and not synopsis.search(c[1])]


ALL = list({c: (os.path.basename(p), kind, c) for p in DOCS[::-1] for kind, c in doc_commands(p)}.values())


def workdir_of(argv):
  """The workdir a `python -m dlgrok.main` argv trains into."""
  given = next((a.split("=", 1)[1] for a in argv if a.startswith("--workdir=")), None)
  if given:
    return given
  spec = next(a.split("=", 1)[1] for a in argv if a.startswith("--config="))
  overrides = dict(a[len("--config."):].split("=", 1) for a in argv if a.startswith("--config."))
  return main_cli.default_workdir(spec, {k: float(v) if v.replace(".", "").isdigit() else v
                                         for k, v in overrides.items()})


def needs_missing_data(argv):
  spec = next(a for a in argv if a.startswith("--config="))
  return any(f in spec for f in ("mnist", "shakespeare")) and not os.path.isdir(DATA) or "cifar10" in spec


@contextlib.contextmanager
def inside(folder):
  old = os.getcwd()
  os.chdir(folder)
  try:
    yield
  finally:
    os.chdir(old)


def tree(folder):
  return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


@pytest.fixture(autouse=True)
def data_beside_the_checkout(monkeypatch):
  """The docs' MNIST and Shakespeare commands find the files where a checkout beside ../shared/data does."""
  if os.path.isdir(DATA):
    monkeypatch.setenv("DLGROK_DATA", os.path.abspath(DATA))


@pytest.fixture(scope="module")
def room(tmp_path_factory):
  """A working folder like a checkout's root (experiments/, benchmarks/, launch/ linked) where the docs'
  workdirs are made: the training commands whose workdirs a plot or inspect command reads run there for real.
  Built once per session (the first test worker builds it, the others wait), then copied for each worker, whose
  commands add files to it."""
  base = tmp_path_factory.getbasetemp()
  shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
  built = shared / "readme_room"
  with open(shared / "readme_room.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (shared / "readme_room.done").exists():
      shutil.rmtree(built, ignore_errors=True)
      build_room(built)
      (shared / "readme_room.done").touch()
  d = tmp_path_factory.mktemp("readme") / "room"
  shutil.copytree(built, d, symlinks=True)
  return d


def build_room(d):
  d.mkdir()
  for name in ("experiments", "benchmarks", "launch"):
    os.symlink(os.path.join(ROOT, name), d / name)
  mains = [shlex.split(c)[3:] for _, kind, c in ALL if c.startswith("python -m dlgrok.main")]
  readers = [shlex.split(c) for _, _, c in ALL if c.startswith(("python -m dlgrok.plot", "python -m dlgrok.inspect"))]
  wanted = {a for argv in readers for a in argv[3:] if a.startswith("runs/") and "--export" not in argv[:argv.index(a)]}
  made = set()
  for argv in mains:
    if workdir_of(argv) in wanted and workdir_of(argv) not in made:
      run = subprocess.run([sys.executable, "-m", "dlgrok.main", *argv, *TINY], cwd=d, env=CLI_ENV,
                           capture_output=True, text=True, timeout=600)
      assert run.returncode == 0, run.stderr[-2000:]
      made.add(workdir_of(argv))
  assert made == wanted, f"no training command in the docs makes {sorted(wanted - made)}"


def test_the_docs_have_commands_and_the_quick_start_is_one_line():
  readme = [c for doc, _, c in ALL if doc == "README.md"]
  assert len(readme) >= 20
  quick = open(DOCS[0]).read().split("## Quick start")[1].split("```")[1]
  assert quick.strip().count("\n") == 0 and "dlgrok.main" in quick and "dlgrok.plot" in quick


def test_dry_run_writes_nothing_and_prints_the_plan(tmp_path):
  os.symlink(os.path.join(ROOT, "experiments"), tmp_path / "experiments")
  run = subprocess.run([sys.executable, "-m", "dlgrok.main", "--config=experiments/mod97.py:ffn", "--dry_run"],
                       cwd=tmp_path, env=CLI_ENV, capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr
  assert run.stdout.strip() == ("30 models in 2 cohorts (baseline: 5; ffn: 25); 1,000,000 steps, 176 evaluations; "
                                "30,000,000 model-steps; workdir runs/mod97-ffn (dry run: nothing written)")
  assert tree(tmp_path) == [] or all(p.startswith("experiments") for p in tree(tmp_path))
  assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("doc,kind,command", ALL, ids=[f"{d}:{c[:70]}" for d, _, c in ALL])
def test_command(doc, kind, command, room, capsys):
  before = tree(room)
  if kind == "python":
    with inside(room):
      exec(compile(command, doc, "exec"), {})
    assert tree(room) == before
    return
  argv = shlex.split(command)
  if argv[:3] == ["python", "-m", "dlgrok.main"]:
    args = argv[3:]
    config = main_cli.parse(args).config
    assert config is not None
    if not needs_missing_data(args):
      with inside(room):  # what --dry_run checks, less the earlier run (the room's tiny one) in its workdir
        train.check_writable(workdir_of(args))
        plan = cohorts.resolve(config)
      assert plan.n_models >= 1 and plan.steps >= 1
    made = [p for p in tree(room) if p not in before]
    assert made == [], f"the dry run wrote {made}"
  elif argv[:3] == ["python", "-m", "dlgrok.plot"]:
    with inside(room):
      plot.main(argv[3:])
  elif argv[:3] == ["python", "-m", "dlgrok.inspect"]:
    with inside(room):
      inspect_cli.main(argv[3:])
    out = capsys.readouterr()
    assert "model" in out.out and "absl" not in out.err
  elif argv[:3] == ["python", "-m", "dlgrok.sweep"]:
    with inside(room):
      sweep.main(argv[3:])
    assert "dlgrok.main" in capsys.readouterr().out or "--status" in argv
  elif argv[:3] == ["python", "-m", "dlgrok.reproduce"]:
    with inside(room):
      reproduce.main(argv[3:] + ([] if "--list" in argv else ["--list"]))  # --list: the arguments, no training
    assert "grid80" in capsys.readouterr().out
  elif argv[0].startswith("launch/") or (argv[0] == "bash" and argv[1].endswith("_cpu.sh")):
    script = argv[1:] if argv[0] == "bash" else argv
    extra = [str(room / "runs"), "--dry_run"] if script[0].endswith("_cpu.sh") else []
    run = subprocess.run(["bash", *script, *extra], cwd=room, env=CLI_ENV, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "dlgrok.main" in run.stdout or "dry run: nothing written" in run.stdout
  elif argv[:2] == ["tensorboard", "--logdir"]:  # TensorBoard's own summary of the event files, not the server
    run = subprocess.run(["tensorboard", "--inspect", "--logdir", str(room / argv[2])], env=CLI_ENV,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "scalars" in run.stdout and "num_steps" in run.stdout, run.stderr[-2000:]
  elif argv[0] == "python" and argv[1].startswith("benchmarks/"):
    run = subprocess.run([sys.executable, argv[1], "--help"], cwd=room, env=CLI_ENV, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and "usage" in run.stdout, run.stderr[-2000:]
  else:
    pytest.fail(f"{doc}: no rule runs {command!r}; add one to tests/test_readme.py")
