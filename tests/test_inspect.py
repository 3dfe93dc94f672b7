import json
import os
import shutil
import warnings

import numpy as np
import pytest

from conftest import experiment, tiny_config
from dlgrok import checkpoint, cohorts, decompose, inspect, lock, metrics, plot, train


def test_inspect_counts_and_export(tmp_path, capsys):
  wd = str(tmp_path / "run")
  train.run(tiny_config(group="tok,pos", ranks="r2,p100", seeds=1, steps=40.0), wd)
  out, _ = inspect.report(wd)
  assert out["step"] == 40 and [c["name"] for c in out["cohorts"]] == ["baseline", "tok,pos"]
  assert [(m["rank"], m["seed"]) for m in out["models"]] == [("full", 0), ("r2", 0), ("p100", 0)]
  r2, full = out["details"][1]["layers"], out["details"][2]["layers"]
  # Table 2's position-embedding formula (5 x width) and Table 1's token formula (vocab 13 x width 32 here)
  assert r2["pos_emb/embedding"]["trained"] == 5 * 2 + 2 * 2 + 2 * 32
  assert full["pos_emb/embedding"]["trained"] == 5 * 5 + 25 + 5 * 32
  assert r2["tok_emb/embedding"]["trained"] == 13 * 2 + 4 + 2 * 32 and r2["tok_emb/embedding"]["inference"] == 90
  assert len(r2["tok_emb/embedding"]["singular_values"]) == 2
  base = out["details"][0]["total"]
  assert base["trained"] == base["dense"] == out["details"][1]["total"]["dense"]
  d = out["details"][1]
  assert d["total"]["trained"] == base["trained"] - 13 * 32 - 5 * 32 + 94 + 78
  assert abs(d["trained_ratio"] - d["total"]["trained"] / base["dense"]) < 1e-12
  # exact when K >= the trained rank; lossy below it
  capsys.readouterr()
  inspect.main([wd, "--model", "1", "--export", str(tmp_path / "exp2"), "--rank", "2", "--json"])
  e = json.loads(capsys.readouterr().out)["export"]
  assert e["test_acc_after"] == e["test_acc_before"]
  _, run = inspect.report(wd, model=1)
  _, _, params, ranks = inspect.pick(run, 1)
  exact, lossy = inspect.compressed(params, ranks, 2), inspect.compressed(params, ranks, 1)
  dense = decompose.recompose(params, ranks)
  assert np.max(np.abs(exact["tok_emb"]["embedding"] - dense["tok_emb"]["embedding"])) < 1e-5
  assert np.max(np.abs(lossy["tok_emb"]["embedding"] - dense["tok_emb"]["embedding"])) > 1e-2
  inspect.main([wd, "--model", "2", "--export", str(tmp_path / "exp1"), "--rank", "1"])
  text = capsys.readouterr().out
  assert "exported model 2 at rank 1" in text and "tok_emb/embedding: 13x32 rank 13" in text


def test_export_loads_into_the_plain_model(tmp_path):
  import orbax.checkpoint as ocp
  wd = str(tmp_path / "run")
  cfg = tiny_config(group="ffn", ranks="r4", seeds=1, steps=20.0, baseline=False)
  train.run(cfg, wd)
  inspect.main([wd, "--model", "0", "--export", str(tmp_path / "exp"), "--rank", "4"])
  params = ocp.StandardCheckpointer().restore(str(tmp_path / "exp"))["params"]
  assert params["block_0"]["ffn"]["fc1"]["kernel"].shape == (32, 128)
  assert np.linalg.matrix_rank(np.asarray(params["block_0"]["ffn"]["fc1"]["kernel"]), tol=1e-4) == 4
  plan = cohorts.resolve(cfg)
  model, x = plan.task.model(plan.config, (), plan.data), plan.data.x
  assert model.apply({"params": params}, x[:8]).shape == (8, 13)


def test_factors_file_feeds_the_app_c_figures(tmp_path):
  from dlgrok import plot
  wd = str(tmp_path / "run")
  train.run(tiny_config(group="out", ranks="r3,p100", seeds=1, steps=10.0), wd)
  inspect.main([wd, "--factors"])
  data = np.load(f"{wd}/factors.npz")
  assert sorted(data.files) == ["m0/out/A", "m1/out/S", "m1/out/U", "m1/out/Vt", "m2/out/S", "m2/out/U", "m2/out/Vt"]
  assert data["m1/out/U"].shape == (32, 13) and data["m0/out/A"].shape == (32, 13)
  names = [name for name, _ in plot.figures(plot.load([wd]), [wd])]
  assert any(n.startswith("factors_") for n in names)


@pytest.mark.slow  # compiles the full-size model: ~2 min on 2 loaded CPU cores
def test_inspect_reports_tables_1_and_2_on_the_paper_model(tmp_path):
  wd = str(tmp_path / "run")
  cfg = experiment("mod97", "tok,pos,r5,p100,seeds=1,steps=1,eval_points=1,baseline=false")
  train.run(cfg, wd)
  out, _ = inspect.report(wd)
  assert [m["rank"] for m in out["models"]] == ["r5", "p100"]
  tok = [out["details"][i]["layers"]["tok_emb/embedding"] for i in (0, 1)]
  pos = [out["details"][i]["layers"]["pos_emb/embedding"] for i in (0, 1)]
  assert [t["trained"] for t in tok] == [99 * 5 + 25 + 5 * 128, 32274] and [t["dense"] for t in tok] == [12672] * 2
  assert [p["trained"] for p in pos] == [690, 690] and [p["dense"] for p in pos] == [640] * 2
  total = out["details"][1]["total"]
  assert total["trained"] == total["dense"] - 12672 - 640 + 32274 + 690


def test_inspect_and_plot_read_a_workdir_in_use_and_write_nothing(tmp_path):
  """A run in progress: its lock held, a save in flight (orbax's temporary directory), half a row written."""
  wd = str(tmp_path / "run")
  train.run(tiny_config(group="tok", ranks="r2", baseline=False, seeds=1, steps=15.0), wd)
  held = lock.acquire(wd)
  ckdir = checkpoint.directory(wd)
  shutil.copytree(os.path.join(ckdir, "15"), os.path.join(ckdir, "20.orbax-checkpoint-tmp-1"))
  with open(metrics.path(wd), "a") as f:
    f.write('{"step": 20, "model": 0, "te')

  def snapshot():
    return {os.path.join(r, f): open(os.path.join(r, f), "rb").read() for r, _, fs in os.walk(wd) for f in fs}

  before = snapshot()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the half row is dropped with a warning
    out, _ = inspect.report(wd)
    rows = plot.load([wd])
  assert out["step"] == 15 and out["steps"] == [2, 6, 15]
  assert sorted({r["step"] for r in rows}) == [0, 1, 2, 6, 15]
  assert snapshot() == before
  lock.release(wd, held)
