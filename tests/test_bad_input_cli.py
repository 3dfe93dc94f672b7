"""Bad input through every entry point (main, plot, inspect, sweep, reproduce): each case exits with its status,
says one short line on stderr without a traceback, and leaves the directory it ran in byte for byte as it was.
The entry points run in-process as their __main__ runs them (inputs.cli(main), main.run()); the cases that need
a fresh process (JAX_PLATFORMS, orbax's threads on a failed export) run the real CLI."""
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import CLI_ENV, ROOT, experiment, tiny_config
from dlgrok import cohorts, inputs, inspect, main, memory, plot, reproduce, sweep, tasks, train
from dlgrok.tasks import common

MOD97 = os.path.join(ROOT, "experiments", "mod97.py")
TINY = "p=11,op=x+y,width=32,heads=2,seeds=1,steps=8,batch_size=32,eval_points=2"
LONG = "a" * 300


@pytest.fixture(scope="module")
def box(tmp_path_factory):
  """A directory of good and broken workdirs and files, the cases' world."""
  d = tmp_path_factory.mktemp("box")
  train.run(tiny_config(seeds=2, steps=8.0, eval_points=2), str(d / "run"))  # one cohort: one compilation
  rows = [json.loads(line) for line in open(d / "run" / "metrics.jsonl")]
  for name in ("step0", "nulls", "mdir", "ckfile", "cfgdir", "cfgbin", "nometrics", "empty"):
    (d / name).mkdir()
  shutil.copy(d / "run" / "config.json", d / "step0")
  (d / "step0" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if r["step"] == 0))
  shutil.copy(d / "run" / "config.json", d / "nulls")
  nulls = [dict(r, train_acc=None, test_acc=None, train_loss=None, test_loss=None, gap=None, diverged=True)
           for r in rows]
  (d / "nulls" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in nulls))
  for name in ("mdir", "ckfile", "nometrics"):
    shutil.copy(d / "run" / "config.json", d / name)
  (d / "mdir" / "metrics.jsonl").mkdir()
  shutil.copy(d / "run" / "metrics.jsonl", d / "ckfile")
  (d / "ckfile" / "checkpoints").write_text("x")
  (d / "cfgdir" / "config.json").mkdir()
  (d / "cfgbin" / "config.json").write_bytes(bytes(range(256)))
  (d / "afile").write_text("x")
  os.symlink(d / "nowhere", d / "dangling")
  (d / "raises.py").write_text("def get_config(arg):\n  raise RuntimeError('boom')\n")
  (d / "dict.py").write_text("def get_config(arg):\n  return {'task': 'mod97'}\n")
  (d / "noarg.py").write_text("def get_config():\n  return None\n")
  (d / "sweep" / "mod97-none_f50").mkdir(parents=True)
  (d / "sweep" / "mod97-none_f50" / "config.json").write_bytes(b"\xff\xfe")
  return d


def tree_hash(root):
  """Names, kinds, link targets and bytes of everything under `root`."""
  h = hashlib.sha256()
  for dirpath, dirs, files in sorted(os.walk(root)):
    dirs.sort()
    for name in sorted(dirs + files):
      p = os.path.join(dirpath, name)
      h.update(p.encode())
      if os.path.islink(p):
        h.update(b"link" + os.readlink(p).encode())
      elif os.path.isfile(p):
        with open(p, "rb") as f:
          h.update(f.read())
  return h.hexdigest()


def run_cli(module, argv):
  """(exit status, stderr) of `python -m dlgrok.<module> ARGV`, in-process."""
  if module == "main":
    sys.argv = ["dlgrok.main", *argv]
    entry = main.run
  else:
    entry = lambda: inputs.cli(lambda: {"plot": plot, "inspect": inspect, "sweep": sweep,
                                        "reproduce": reproduce}[module].main(argv))
  try:
    entry()
  except SystemExit as e:
    return e.code if isinstance(e.code, int) else 1
  return 0


# (module, arguments with {d} for the box, exit status, text of the one line)
CASES = [
    ("plot", ["{d}/missing"], 2, "does not exist"),
    ("plot", ["{d}/empty"], 2, "has no config.json"),
    ("plot", ["{d}/step0"], 1, "nothing to plot yet"),
    ("plot", ["{d}/run", "--out", "{d}/afile"], 2, "is a file, not a directory"),
    ("plot", ["{d}/run", "--out", "{d}/afile/plots"], 2, "afile is a file"),
    ("plot", ["{d}/mdir"], 2, "metrics.jsonl is a directory"),
    ("plot", ["{d}/nometrics"], 2, "has no metrics.jsonl yet"),
    ("plot", ["{d}/cfgdir"], 2, "config.json is a directory"),
    ("plot", ["{d}/cfgbin"], 2, "config.json is not valid JSON"),
    ("plot", ["{d}/dangling"], 2, "symbolic link"),
    ("plot", ["{d}/" + LONG], 2, "over the file system's limit of 255"),
    ("plot", ["{d}/afile"], 2, "is a file, not a run directory"),
    ("inspect", ["{d}/run", "--step", "150"], 2, "saved steps: "),
    ("inspect", ["{d}/run", "--step", "-1"], 2, "--step -1: no checkpoint"),
    ("inspect", ["{d}/run", "--model", "7"], 2, "models are 0..1"),
    ("inspect", ["{d}/run", "--model", "-1"], 2, "--model -1"),
    ("inspect", ["{d}/run", "--export", "{d}/e", "--rank", "0"], 2, "--rank 0"),
    ("inspect", ["{d}/run", "--export", "{d}/afile/sub", "--rank", "2"], 2, "afile is a file"),
    ("inspect", ["{d}/run", "--export", "{d}/afile", "--rank", "2"], 2, "is a file, not a directory"),
    ("inspect", ["{d}/run", "--step", "ten"], 2, "invalid int value: 'ten'"),
    ("inspect", [], 2, "the following arguments are required: workdir"),
    ("plot", ["{d}/run", "--nosuch"], 2, "unrecognized arguments: --nosuch"),
    ("inspect", ["{d}/ckfile"], 2, "is a file, not the directory of checkpoints"),
    ("inspect", ["{d}/step0"], 2, "no checkpoint in"),
    ("inspect", ["{d}/missing"], 2, "does not exist"),
    ("inspect", ["{d}/cfgbin"], 2, "not valid JSON"),
    ("inspect", ["{d}/dangling"], 2, "symbolic link"),
    ("inspect", ["{d}/" + LONG], 2, "over the file system's limit"),
    ("main", [f"--config={ROOT}/README.md:tok", "--workdir={d}/w"], 2, "is not a Python file"),
    ("main", ["--config={d}/raises.py:x", "--workdir={d}/w"], 2, "get_config('x') failed: RuntimeError: boom"),
    ("main", ["--config={d}/dict.py:x", "--workdir={d}/w"], 2, "get_config returned a dict"),
    ("main", ["--config={d}/noarg.py:x", "--workdir={d}/w"], 2, "get_config must take one argument"),
    ("main", [f"--config={MOD97}:{TINY}", "--config.task=mnist_wd", "--workdir={d}/w"], 2,
     "task='mnist_wd' needs the config field 'n_train'"),
    ("main", [f"--config={MOD97}:{TINY},devices=99", "--workdir={d}/w"], 2, "devices=99: this machine has"),
    ("main", [f"--config={MOD97}:{TINY},f0.001", "--workdir={d}/w"], 2, "leaves 0 to train on"),
    ("main", [f"--config={MOD97}:seeds=100000", "--workdir={d}/w"], 2, "models fit per device"),
    ("main", [f"--config={MOD97}:width=100000,seeds=1", "--workdir={d}/w"], 2, "not even one model fits"),
    ("main", [f"--config={MOD97}:{TINY}", "--workdir={d}/mdir"], 2, "metrics.jsonl is a directory"),
    ("main", [f"--config={MOD97}:{TINY}", "--workdir={d}/ckfile"], 2, "checkpoints is a file"),
    ("main", [f"--config={MOD97}:{TINY}", "--workdir={d}/cfgdir"], 2, "config.json is a directory"),
    ("main", [f"--config={MOD97}:{TINY}", "--workdir={d}/cfgbin"], 2, "config.json is not valid JSON"),
    ("main", [f"--config={MOD97}:{TINY}", "--workdir={d}/dangling"], 2, "symbolic link"),
    ("main", [f"--config={MOD97}:{TINY}", "--workdir={d}/" + LONG], 2, "over the file system's limit"),
    ("sweep", ["{d}/nosuch.py"], 2, "not found"),
    ("sweep", [MOD97, "--groups", "bogus"], 2, "unknown token 'bogus'"),
    ("sweep", [MOD97, "--fracs", "abc"], 2, "unknown token 'fabc'"),
    ("sweep", [MOD97, "--set", "seeds=0"], 2, "seeds=0"),
    ("sweep", [MOD97, "--root", "{d}/afile"], 2, "--root"),
    ("sweep", [MOD97, "--status", "--groups", "tok", "--fracs", "50", "--root", "{d}/sweep"], 2, "not valid JSON"),
    ("reproduce", ["{d}/afile"], 2, "OUTDIR"),
    ("reproduce", ["{d}/out", "--budget", "-5"], 2, "--budget -5"),
    ("reproduce", ["{d}/out", "--budget", "nan"], 2, "--budget nan"),
    ("reproduce", ["{d}/out", "--peer", "{d}/nowhere"], 2, "--peer"),
    ("reproduce", ["{d}/out", "--workdirs", "{d}/afile/x"], 2, "afile is a file"),
    ("reproduce", ["{d}/out", "--only", "bogus"], 2, "unknown item 'bogus'"),
    ("reproduce", ["{d}/out", "--budget", "soon"], 2, "invalid float value: 'soon'"),
    ("sweep", [MOD97, "--format", "yaml"], 2, "invalid choice: 'yaml'"),
]


def check_case(box, capsys, module, argv, code, says):
  before = tree_hash(box)
  capsys.readouterr()
  got = run_cli(module, [a.replace("{d}", str(box)) for a in argv])
  err = capsys.readouterr().err
  assert got == code, (module, argv, got, err[-2000:])
  assert says in err and "Traceback" not in err and len(err.strip().splitlines()) <= 3, err[-2000:]
  assert tree_hash(box) == before, (module, argv)
  return err


def test_every_case_one_line_and_nothing_written(box, capsys):
  argv0 = sys.argv
  try:
    for module, argv, code, says in CASES:
      check_case(box, capsys, module, argv, code, says)
  finally:
    sys.argv = argv0
  print(f"CLI bad-input cases: {len(CASES) + len(ENV_CASES) + 1}")
  # rows whose every value is null (every model diverged): drawn, not refused
  plot.main([str(box / "nulls"), "--out", str(box / "p")])
  assert (box / "p" / "accuracy_none.png").exists() and "diverged" in plot.tables(plot.load([str(box / "nulls")]))




ENV_CASES = [("gpu", "main"), ("tpu", "main"), ("bogus", "main"), ("gpu", "inspect")]


@pytest.mark.parametrize("platform,module", ENV_CASES)
def test_unusable_jax_platforms(tmp_path, platform, module):
  """Refused before anything else (inspect: before it reads the workdir, so none is needed here)."""
  argv = [f"--config={MOD97}:{TINY}", f"--workdir={tmp_path}/w"] if module == "main" else [str(tmp_path)]
  done = subprocess.run([sys.executable, "-m", f"dlgrok.{module}", *argv], capture_output=True, text=True,
                        timeout=120, env=dict(CLI_ENV, JAX_PLATFORMS=platform))
  assert done.returncode == 2 and done.stderr.startswith(f"error: JAX_PLATFORMS='{platform}'"), done.stderr
  assert len(done.stderr.strip().splitlines()) == 1 and os.listdir(tmp_path) == []


def test_export_under_a_file_exits_promptly(tmp_path):
  """It printed a traceback and hung in orbax's threads; the path is checked before the workdir is read."""
  (tmp_path / "afile").write_text("x")
  done = subprocess.run([sys.executable, "-m", "dlgrok.inspect", str(tmp_path), "--export",
                         str(tmp_path / "afile" / "sub"), "--rank", "2"], capture_output=True, text=True,
                        timeout=120, env=CLI_ENV)
  assert done.returncode == 2 and "Traceback" not in done.stderr and "afile is a file" in done.stderr


def test_paper_configs_fit_24_gib(monkeypatch):
  """The memory refusal leaves the paper's runs alone: mod-97 ffn (5 seeds x 6 models) and App. E's 660 MNIST
  models, one model per pass (CPU) or all vmapped (an accelerator)."""
  fake = lambda c: common.Data(x=np.zeros((70000, 784), np.float32), y=np.zeros(70000, np.int32),
                               n_train=c.n_train)
  monkeypatch.setitem(tasks.TASKS, "mnist_wd", dataclasses.replace(tasks.TASKS["mnist_wd"], load=fake))
  for name, arg in (("mod97", "ffn"), ("mnist_wd", "all")):
    for vmapped in (False, True):
      config = experiment(name, arg)
      plan = cohorts.resolve(config)
      config.model_batch = plan.n_models if vmapped else 1
      memory.check(cohorts.resolve(config), limit=24 * 2**30)  # raises when refused
