"""Bad input, as a new user types it, through every entry point (main, plot, inspect, sweep, reproduce): each case
exits with its status and says one short line on stderr naming the bad value, without a traceback, and writes
nothing; or it is a documented acceptance.

Config values run through the CLI's own checks in-process (the CLI's parser, then train.prepare: everything before
the data are loaded for training). The entry points run in-process as their __main__ runs them (inputs.cli(main),
main.run()); the cases that need a fresh process (the exit status, JAX_PLATFORMS, orbax's threads on a failed
export) run the real CLI."""
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import CLI_ENV, ROOT, experiment, tiny_config
from dlgrok import cohorts, configs, decompose, inputs, inspect, main, memory, metrics, plot, reproduce, sweep, tasks
from dlgrok import run_config, train
from dlgrok.tasks import common

MOD97 = os.path.join(ROOT, "experiments", "mod97.py")
ERRORS = (configs.ConfigError, decompose.DecomposeError, metrics.MetricsError, run_config.ConfigFileError)
TINY = "p=11,op=x+y,width=32,heads=2"

# (argument of experiments/mod97.py, --config overrides, text the one-line error must contain)
MOD97_CASES = [
    ("ffn,r0", [], "'r0'"), ("ffn,r1e400", [], "'1e400' is not a finite number"), ("ffn,r12.5", [], "'r12.5'"),
    ("ffn,r-3", [], "'r-3'"), ("ffn,r129", [], "rank 129"), ("ffn,p0", [], "'p0'"), ("ffn,p101", [], "'p101'"),
    ("ffn,pnan", [], "unknown token 'pnan'"), ("ffn,pinf", [], "unknown token 'pinf'"),
    ("f0", [], "'f0'"), ("f100", [], "'f100'"), ("f80,f120", [], "'f120'"), ("fnan", [], "unknown token 'fnan'"),
    ("f80,f80", [], "'f80' repeats"), ("fracs=1.5", [], "fraction 1.5 is outside (0, 1)"),
    ("grokfast_ema,ema_alphas=1", [], "ema_alphas=(1.0,): 1 must be in [0, 1)"),
    ("grokfast_ema,ema_alphas=-0.1", [], "-0.1 must be in [0, 1)"),
    ("grokfast_ema,ema_lambs=-1", [], "ema_lambs=(-1.0,): -1 must be >= 0"),
    ("grokfast_ma,ma_windows=0", [], "ma_windows=(0,): 0 must be >= 1"),
    ("grokfast_ma,ma_windows=2.5", [], "ma_windows=2.5: expected whole numbers"),
    ("grokfast_ma,ma_lambs=-2", [], "ma_lambs=(-2.0,): -2 must be >= 0"), ("decay,decays=-1", [], "decays=(-1.0,)"),
    ("gradfast", [], "unknown token 'gradfast'"), ("grokfast_ema+grokfast_ma", [], "alternatives"),
    ("stablemax+stablemax", [], "at most once"), ("all,svd", [], "unknown token 'svd'"),
    ("all,p50,uv,uv", [], "'uv' repeats"), ("factorisations=svd,all,p50", [], "factorisations: 'svd'"),
    ("remedies=foo", [], "remedy 'foo'"),
    ("ffn,ffn", [], "'ffn' repeats"), ("ffn,r8,r8", [], "'r8' repeats"),
    ("ffn,p50,r16", [], "'r16' and 'p50' give the same ranks"), ("wd0.1,wd0.1", [], "'wd0.1' repeats"),
    ("wd-1", [], "weight decay -1"), ("wdnan", [], "'wdnan'"), ("foo", [], "unknown token 'foo'"),
    ("steps=abc", [], "'abc' is not a number"), ("steps=", [], "steps: '' is not a number"),
    ("steps=nan", [], "'nan' is not a finite number"), ("steps=inf", [], "'inf' is not a finite number"),
    ("steps=-5", [], "steps=-5"), ("steps=2.5", [], "steps=2.5"), ("steps=1e400", [], "'1e400'"),
    ("seeds=0", [], "seeds=0"), ("seeds=1.5", [], "seeds=1.5"), ("seeds=-2", [], "seeds=-2"),
    ("seed=-1", [], "seed=-1"), ("seed=4294967296", [], "seed=4294967296"),
    ("seed=4294967295,seeds=2", [], "seed=4294967295"), ("width=0", [], "width=0"), ("heads=0", [], "heads=0"),
    ("layers=0", [], "layers=0"), ("width=30,heads=4", [], "width=30 is not divisible by heads=4"),
    ("batch_size=0", [], "batch_size=0"), ("batch_size=big", [], "'big' is not a number"), ("lr=0", [], "lr=0"),
    ("lr=-1", [], "lr=-1"), ("lr=nan", [], "'nan' is not a finite number"), ("lr=inf", [], "'inf'"),
    ("weight_decay=-1", [], "weight_decay=-1"), ("weight_decay=nan", [], "'nan'"),
    ("eval_points=-1", [], "eval_points=-1"), ("eval_spacing=cubic", [], "eval_spacing='cubic'"),
    ("eval_spacing=linear", [], "eval_spacing='linear' needs eval_points=N"), ("model_batch=-1", [], "model_batch=-1"),
    ("matmul_precision=fast", [], "matmul_precision='fast'"), ("init=he", [], "init='he'"),
    ("p=96,op=x/y", [], "96"), ("op=x%y", [], "x%y"), ("frac=1.5", [], "frac=1.5"), ("frac=0", [], "frac=0"),
    ("baseline=maybe", [], "baseline=maybe"), ("unknown=3", [], "unknown config field 'unknown'"),
    ("b2=1.0", [], "b2=1"), ("eps=0", [], "eps=0"), ("eval_chunk=-1", [], "eval_chunk=-1"),
    ("ranks=8", [], "ranks r8 given but no layer group"), ("tok,r100", [], "rank 100"), ("pos,r6", [], "rank 6"),
    ("checkpoint_minutes=-1", [], "checkpoint_minutes=-1"), ("progress_seconds=0", [], "progress_seconds=0"),
    ("warmup_start=-0.1", [], "warmup_start=-0.1"), ("init_scale=0", [], "init_scale=0"),
    ("ranks=q8,ffn", [], "ranks: 'q8' is not a number"), ("pcts=101,ffn", [], "rank percent 101"),
    ("ranks=2.5,ffn", [], "ranks=2.5: expected whole numbers"), ("group=ffn,ranks=8,baseline=1", [], None),
    ("", ["--config.steps=abc"], "'abc' is not a number"), ("", ["--config.steps="], "'' is not a number"),
    ("", ["--config.seeds=1.5"], "seeds=1.5"), ("", ["--config.batch_size=big"], "'big'"),
    ("", ["--config.nosuch=1"], "unknown config field 'nosuch'"), ("", ["--config.lr=nan"], "'nan'"),
    ("", ["--config.steps"], "--config.steps: give a value"), ("", ["--config.baseline=2"], "baseline=2"),
]
# documented acceptances: (argument, what the resolved config holds)
ACCEPTED = [("steps=1e4", {"steps": 10000.0}), ("seeds=3.0", {"seeds": 3}), ("ffn, r8", {"ranks": (8,)}),
            ("ffn,p12.5", {"pcts": (12.5,)}), ("steps=0,f80", {"steps": 10000.0}), ("baseline=1", {"baseline": True}),
            ("ffn", {"pcts": (12.5, 25.0, 50.0, 75.0, 100.0)}), ("f80,f65", {"frac": 0.8, "fracs": (0.8, 0.65)}),
            ("all,p50,uv,diag", {"factorisations": ("uv", "diag")}),
            ("orthograd+stablemax", {"remedies": ("stablemax+orthograd",)})]


def outcome(argv, workdir):
  """What the CLI says before it loads data to train: None (accepted) or its one error line."""
  try:
    config = main.parse(argv).config
    train.prepare(config, workdir)
  except ERRORS as e:
    return str(e)
  return None


def argv_for(arg, overrides=(), path=MOD97):
  """The case's argument, then the tiny model's settings that it does not set itself."""
  keys = {t.split("=")[0] for t in arg.split(",")}
  tiny = [t for t in TINY.split(",") if t.split("=")[0] not in keys]
  return [f"--config={path}:{','.join([arg] * bool(arg) + tiny)}"] + list(overrides)


@pytest.mark.parametrize("arg,overrides,says", MOD97_CASES, ids=[a or o[0] for a, o, _ in MOD97_CASES])
def test_bad_value_gives_one_line_naming_it(tmp_path, arg, overrides, says):
  out = outcome(argv_for(arg, overrides), str(tmp_path / "w"))
  if says is None:  # "baseline=1" is a documented spelling of true
    assert out is None
    return
  assert out is not None and "\n" not in out and says in out, out
  assert not (tmp_path / "w").exists()  # nothing written


@pytest.mark.parametrize("arg,holds", ACCEPTED)
def test_documented_acceptances(tmp_path, arg, holds):
  config = train.prepare(main.parse(argv_for(arg)).config, str(tmp_path / "w")).config
  assert {k: config[k] for k in holds} == holds


def write(path, text):
  with open(path, "w") as f:
    f.write(text)


def file_cases(tmp_path):
  """(argv, workdir, text of the error) for bad files: experiment files, workdirs, data."""
  d = tmp_path
  write(d / "noconfig.py", "X = 1\n")
  write(d / "broken.py", "def get_config(arg:\n")
  write(d / "afile", "x")
  (d / "w").mkdir()
  write(d / "w" / "config.json", '{"task": "mod97", ')
  for name, text in (("one", "a" * 5000), ("nul", "\0" * 5000)):
    (d / name).mkdir()
    write(d / name / "input.txt", text)
  mnist_dir = d / "mnist"
  mnist_dir.mkdir()
  with gzip.open(mnist_dir / "train-images-idx3-ubyte.gz", "wb") as f:
    f.write(b"\0\0\x08\x03")
  exp = lambda name: os.path.join(ROOT, "experiments", name)
  ok = argv_for("")
  return [
      ([f"--config={d / 'missing.py'}:ffn"], str(d / "x"), "not found"),
      ([f"--config={d / 'noconfig.py'}:ffn"], str(d / "x"), "has no get_config(arg) function"),
      ([f"--config={d / 'broken.py'}:ffn"], str(d / "x"), "failed to load: SyntaxError"),
      (ok, str(d / "afile"), "is a file, not a directory"), (ok, str(d / "afile" / "sub"), "is a file"),
      (ok, "/proc/dlgrok-test/w", "is not writable"), (ok, str(d / "w"), "config.json is not valid JSON"),
      ([f"--config={exp('shakespeare.py')}:data_dir={d / 'one'},width=32,heads=2,layers=1,block=8"], str(d / "x"),
       "has 1 distinct character(s) ('a')"),
      ([f"--config={exp('shakespeare.py')}:data_dir={d / 'nul'},width=32,heads=2,layers=1,block=8"], str(d / "x"),
       "has 1 distinct character(s) ('\\x00')"),
      ([f"--config={exp('shakespeare.py')}:dropout=1"], str(d / "x"), "dropout=1"),
      ([f"--config={exp('mnist_wd.py')}:l1,data_dir={mnist_dir}"], str(d / "x"), "MNIST files not found"),
      ([f"--config={exp('mnist_wd.py')}:l1,pixels=zero"], str(d / "x"), "pixels='zero'"),
      ([f"--config={exp('mnist_wd.py')}:l1,wd0,wd0.0"], str(d / "x"), "'wd0.0' repeats"),
      ([f"--config={exp('mnist_wd.py')}:l1,weight_decays=0;0.1"], str(d / "x"), "'0;0.1'"),
      ([f"--config={exp('cifar10.py')}:all,n_train=0"], str(d / "x"), "n_train=0"),
      ([f"--config={exp('mnist_wd.py')}:l1,f50,f80"], str(d / "x"), "data fix the split; one fraction only"),
      ([f"--config={exp('cifar10.py')}:all,data_dir={d / 'x'}"], str(d / "x"), "CIFAR-10 batches not found"),
  ]


def test_bad_files_give_one_line(tmp_path):
  cases = file_cases(tmp_path)
  for argv, workdir, says in cases:
    out = outcome(argv, workdir)
    assert out is not None and "\n" not in out and says in out, (argv, out)
  # every case of this file, counted: the closing note reports it
  print(f"bad-input cases: {len(MOD97_CASES) + len(cases)} errors, {len(ACCEPTED)} documented acceptances")


@pytest.mark.parametrize("argv", [[f"--config={MOD97}:ffn,r1e400"], [f"--config={MOD97}:ffn", "--config.seeds=1.5"],
                                  [f"--config={MOD97}:ffn", "--config.steps="], [f"--config={MOD97}:steps=-5"]])
def test_cli_exits_2_with_one_line(tmp_path, argv):
  done = subprocess.run([sys.executable, "-m", "dlgrok.main", *argv, f"--workdir={tmp_path / 'w'}"],
                        capture_output=True, text=True, timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert done.returncode == 2 and done.stderr.startswith("error: ")
  assert len(done.stderr.strip().splitlines()) == 1, done.stderr
  assert not (tmp_path / "w").exists()


TINY_RUN = TINY + ",seeds=1,steps=8,batch_size=32,eval_points=2"  # a run that trains in seconds
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
    ("main", [f"--config={MOD97}:{TINY_RUN}", "--config.task=mnist_wd", "--workdir={d}/w"], 2,
     "task='mnist_wd' needs the config field 'pixels'"),
    ("main", [f"--config={MOD97}:{TINY_RUN},devices=99", "--workdir={d}/w"], 2, "devices=99: this machine has"),
    ("main", [f"--config={MOD97}:{TINY_RUN},f0.001", "--workdir={d}/w"], 2, "leaves 0 to train on"),
    ("main", [f"--config={MOD97}:seeds=100000", "--workdir={d}/w"], 2, "models fit per device"),
    ("main", [f"--config={MOD97}:width=100000,seeds=1", "--workdir={d}/w"], 2, "not even one model fits"),
    ("main", [f"--config={MOD97}:{TINY_RUN}", "--workdir={d}/mdir"], 2, "metrics.jsonl is a directory"),
    ("main", [f"--config={MOD97}:{TINY_RUN}", "--workdir={d}/ckfile"], 2, "checkpoints is a file"),
    ("main", [f"--config={MOD97}:{TINY_RUN}", "--workdir={d}/cfgdir"], 2, "config.json is a directory"),
    ("main", [f"--config={MOD97}:{TINY_RUN}", "--workdir={d}/cfgbin"], 2, "config.json is not valid JSON"),
    ("main", [f"--config={MOD97}:{TINY_RUN}", "--workdir={d}/dangling"], 2, "symbolic link"),
    ("main", [f"--config={MOD97}:{TINY_RUN}", "--workdir={d}/" + LONG], 2, "over the file system's limit"),
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
  argv = [f"--config={MOD97}:{TINY_RUN}", f"--workdir={tmp_path}/w"] if module == "main" else [str(tmp_path)]
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
  class Fake(type(tasks.TASKS["mnist_wd"])):
    def load(self, c):
      return common.Data(x=np.zeros((70000, 784), np.float32), y=np.zeros(70000, np.int32), n_train=c.n_train)

  monkeypatch.setitem(tasks.TASKS, "mnist_wd", Fake())
  for name, arg in (("mod97", "ffn"), ("mnist_wd", "all")):
    for vmapped in (False, True):
      config = experiment(name, arg)
      plan = cohorts.resolve(config)
      config.model_batch = plan.n_models if vmapped else 1
      memory.check(cohorts.resolve(config), limit=24 * 2**30)  # raises when refused
