import os
import subprocess
import sys

import pytest

from conftest import CLI_ENV, ROOT, experiment as get_config
from dlgrok import cohorts, configs, tasks


def test_paper_defaults():
  c = get_config("mod97", "ffn,r32")
  plan = cohorts.resolve(c)
  r = plan.config
  assert (r.p, r.op, r.frac, r.steps, r.seeds, r.lr, r.b1, r.b2, r.weight_decay, r.batch_size) == (
      97, "x/y", 0.5, 1e6, 5, 1e-3, 0.9, 0.98, 0.0, 512)
  planned = plan.cohorts
  assert [(c.name, len(c.models)) for c in planned] == [("baseline", 5), ("ffn", 5)]
  assert set(planned[1].max_ranks) == {f"block_{i}/ffn/{f}/kernel" for i in (0, 1) for f in ("fc1", "fc2")}


@pytest.mark.parametrize("arg,frac,steps", [("f50", 0.5, 1e6), ("f65", 0.65, 1e5), ("f80", 0.8, 1e4),
                                            ("f80,steps=123", 0.8, 123)])
def test_fractions_and_steps(arg, frac, steps):
  r = cohorts.resolve(get_config("mod97", arg)).config
  assert (r.frac, r.steps) == (frac, steps)


def test_default_rank_panels():
  for group, ranks in [("tok", [12, 25, 50, 74, 99]), ("pos", [1, 2, 3, 4, 5]), ("ffn", [16, 32, 64, 96, 128]),
                       ("attn", [16, 32, 64, 96, 128]), ("out", [12, 25, 50, 74, 99])]:
    c = get_config("mod97", group)
    cohort = cohorts.resolve(c).cohorts[1]
    assert len(cohort.models) == 25
    first = sorted(cohort.max_ranks)[0]
    assert sorted({m.layer_ranks[first] for m in cohort.models}) == ranks, group
  c = get_config("mod97", "all,p50")
  ranks = cohorts.resolve(c).cohorts[1].models[0].layer_ranks
  assert ranks["tok_emb/embedding"] == 50 and ranks["out/kernel"] == 50
  assert ranks["block_1/attn/qkv/kernel"] == 64 and ranks["block_0/ffn/fc2/kernel"] == 64
  c59 = get_config("mod59", "tok")
  plan = cohorts.resolve(c59)
  r = plan.config
  assert (r.p, r.frac, r.steps) == (59, 0.8, 3e5)
  cohort = plan.cohorts[1]
  assert sorted({m.layer_ranks["tok_emb/embedding"] for m in cohort.models}) == [8, 15, 31, 46, 61]


def test_every_group_word_plans():
  task = tasks.get("mod97")
  for w in task.words():
    planned = cohorts.resolve(get_config("mod97", f"{w},seeds=1")).cohorts
    assert planned[0].name == "baseline"
  nopos = cohorts.resolve(get_config("mod97", "nopos,seeds=1,baseline=false")).cohorts
  assert [(c.name, c.words) for c in nopos] == [("nopos", ("nopos",))]
  plan = cohorts.resolve(get_config("mod97", ""))
  assert "pos_emb" not in cohorts.factorised_shapes(plan.task, plan.config, plan.data, ("nopos",), {})


@pytest.mark.parametrize("arg,message", [
    ("fnn", r"unknown token 'fnn'; allowed: group words none, tok, pos.*nopos"),
    ("ffn,r0", r"rank 'r0'.*>= 1"),
    ("tok,r100", r"rank 100 for 'tok_emb/embedding' of shape \(99, 128\) is outside the allowed range 1\.\.99"),
    ("pos,r6", r"allowed range 1\.\.5"),
    ("ffn,p0", r"rank percent 'p0' is outside \(0, 100\]"),
    ("ffn,p120", r"rank percent 'p120' is outside \(0, 100\]"),
    ("f100", r"train fraction 'f100' is outside \(0, 100\)"),
    ("frac=1.5", r"frac=1.5 is outside \(0, 1\)"),
    ("p=91", r"p=91 is not prime"),
    ("seeds=0", r"seeds=0: need at least 1"),
    ("colour=red", r"unknown config field 'colour'; fields: .*seeds"),
    ("matmul_precision=fast", r"matmul_precision='fast'; allowed: highest"),
    ("r32", r"ranks r32 given but no layer group"),
])
def test_bad_inputs(arg, message):
  with pytest.raises(configs.ConfigError, match=message):
    cohorts.resolve(get_config("mod97", arg))


def test_mod59_has_no_50_percent_default():
  with pytest.raises(configs.ConfigError, match=r"no step count for frac=0.5 \(known: f65, f80\); pass steps=N"):
    cohorts.resolve(get_config("mod59", "f50"))


def run_cli(args, cwd):
  env = CLI_ENV
  return subprocess.run([sys.executable, "-m", "dlgrok.main", *args], cwd=cwd, capture_output=True, text=True,
                        env=env, timeout=300)


@pytest.mark.parametrize("arg,extra,message", [
    ("fnn", [], "unknown token 'fnn'"),
    ("tok,r100", [], "outside the allowed range 1..99"),
    ("ffn", ["--config.seeds=0"], "seeds=0: need at least 1"),
    ("ffn", ["--config.colour=red"], "unknown config field 'colour' in --config.colour=red; fields: "),
])
def test_cli_errors_write_nothing(tmp_path, arg, extra, message):
  workdir = tmp_path / "w"
  cfg = os.path.join(ROOT, "experiments", "mod97.py")
  out = run_cli([f"--config={cfg}:{arg}", f"--workdir={workdir}", *extra], tmp_path)
  assert out.returncode == 2
  assert out.stderr.strip().splitlines() == [f"error: {out.stderr.strip()[7:]}"] and message in out.stderr
  assert not workdir.exists()


def test_cli_default_workdir(tmp_path):
  cfg = os.path.join(ROOT, "experiments", "mod97.py")
  out = run_cli([f"--config={cfg}:ffn,r8,p=11,op=x+y,width=32,heads=2,f80,seeds=1,eval_points=2",
                 "--config.steps=3", "--config.progress_seconds=0.001"], tmp_path)
  assert out.returncode == 0, out.stderr
  wd = tmp_path / "runs" / ("mod97-ffn_r8_p=11_op=x+y_width=32_heads=2_f80_seeds=1_eval_points=2"
                            "-progress_seconds=0.001-steps=3")
  assert (wd / "metrics.jsonl").exists() and '"steps": 3,' in (wd / "config.json").read_text()  # whole, not 3.0
  lines = out.stdout.splitlines()
  assert lines[0] == "2 models in 2 cohorts (baseline: 1; ffn: 1); 3 steps, 3 evaluations"
  steps = [int(l.split()[1].split("/")[0]) for l in lines[1:] if l.startswith("step ")]
  assert steps == sorted(set(steps)) and steps[-1] == 3 and "model-steps/s" in lines[-1]  # no line twice


def test_experiments_dir_falls_back_to_the_shipped_files(tmp_path, monkeypatch):
  """--config=experiments/X.py from a directory without experiments/ reads the file dlgrok ships; a file that is
  there wins, and a name dlgrok does not ship stays not found."""
  monkeypatch.chdir(tmp_path)
  assert configs.load("experiments/mod97.py", "tok,r3").ranks == (3,)
  (tmp_path / "experiments").mkdir()
  (tmp_path / "experiments" / "mod97.py").write_text(
      "from dlgrok import configs\ndef get_config(arg):\n  return configs.base(task='mine')\n")
  assert configs.load("experiments/mod97.py", "tok").task == "mine"
  with pytest.raises(configs.ConfigError, match="'experiments/nosuch.py' not found"):
    configs.load("experiments/nosuch.py")


def test_a_task_family_must_give_its_data_and_model():
  class Half(tasks.common.Task):
    def load(self, c):
      return None

  with pytest.raises(TypeError, match="abstract.*model"):
    Half()
  assert sorted(tasks.common.Task.__abstractmethods__) == ["load", "model"]
