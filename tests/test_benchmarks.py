import importlib.util
import os

import pytest

from conftest import ROOT


def load_throughput():
  spec = importlib.util.spec_from_file_location("throughput", os.path.join(ROOT, "benchmarks", "throughput.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def test_quick_throughput_table(tmp_path):
  """The --quick path on a tiny mod-11 model: a bare and a dlgrok row with positive rates and a written table."""
  tp = load_throughput()
  out = tmp_path / "t.md"
  rows = tp.main(["--quick", "--set", "p=11,op=x+y,width=16,heads=2,layers=1,batch_size=16", "--models", "2",
                  "--cohorts", "all", "--steps", "2", "--chunks", "1", "--peer", str(tmp_path), "--out", str(out)])
  assert [(r["cohort"], r["models"]) for r in rows] == [("bare", 2), ("all", 2), ("peer (torch)", 1)]
  for r in rows[:2]:
    assert r["rate"] > 0 and r["train_rate"] >= r["rate"] and r["xla_train"] > 0, r
    assert r["traces"] == 1, r  # no recompilation while timing
  assert rows[1]["eval_s"] > 0 and rows[1]["xla_eval"] > 0 and "skipped" in rows[2]["error"]
  lines = out.read_text().splitlines()
  body = [l for l in lines if l.startswith("| ") and not l.startswith("| cohort")]
  assert [l.split(" | ")[0] for l in body] == ["| bare", "| all", "| peer (torch)"]
  assert float(body[1].split(" | ")[4]) > 0  # the dlgrok/bare ratio
  head = next(l for l in lines if l.startswith("| cohort")).split(" | ")
  share = body[1].split(" | ")[head.index("eval share f80 / f65 / f50")]
  f80, f65, f50 = (float(x.rstrip(" %")) for x in share.split(" / "))
  assert 100 > f80 > f65 >= f50 >= 0, share  # fewer evaluations per step in the longer runs
  assert "f80: 1e+04 steps, 155 evals" in out.read_text()  # the paper's 80 % run at its default schedule


def test_grid_projection_adds_up_each_models_training_and_evaluations():
  tp = load_throughput()
  schedules = {"f80": (10**4, 155)}
  rows = [{"cohort": "baseline", "models": 16, "rate": 1, "train_rate": 32.0, "eval_s": 8.0, "chunks": 2},
          {"cohort": "all", "models": 4, "rate": 1, "train_rate": 20.0, "eval_s": 2.0, "chunks": 1},
          {"cohort": "all", "models": 16, "rate": 1, "train_rate": 16.0, "eval_s": 4.0, "chunks": 1}]
  hours, best = tp.grid_hours(rows, schedules)
  assert best["all"]["models"] == 16  # the largest cohort's rates
  per_baseline = 1e4 / 32 + 155 * 8.0 / 2 / 16
  per_decomposed = 1e4 / 16 + 155 * 4.0 / 16
  assert abs(hours * 3600 - (3 * per_baseline + 90 * per_decomposed)) < 1e-6


def test_compile_cost_takes_the_data_as_an_argument():
  spec = importlib.util.spec_from_file_location("compile_cost", os.path.join(ROOT, "benchmarks", "compile_cost.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  row = mod.measure("mod97.py:all,p100,seeds=1,baseline=false,p=11,op=x+y,width=16,heads=2,layers=1,batch_size=16")
  assert row["data_is_argument"] and row["models"] == 1
  assert row["train_compile_s"] > 0 and row["eval_executable_mb"] > 0 and row["peak_rss_mb"] > 0


def test_too_large_cohort_is_refused_with_the_number_that_fits():
  tp = load_throughput()
  tp.device_memory = lambda: (None, 100 * 2**20)
  assert tp.refusal({"models": 10}, 50 * 2**20) is None
  assert tp.refusal({"models": 10}, 200 * 2**20) == ("refused: needs 200.0 MiB per device (XLA's estimate) of 100.0 MiB; "
                                                     "about 4 models fit per device")


def test_quick_augment_table():
  spec = importlib.util.spec_from_file_location("augment_bench", os.path.join(ROOT, "benchmarks", "augment.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  rows = mod.main(["--quick", "--models", "2", "--batch", "4"])
  assert [r["models"] for r in rows] == [0, 2] and all(r["rate"] > 0 and r["calls"] >= 1 for r in rows)


@pytest.mark.slow
def test_augment_train_rows_run_the_real_train_chunk(capsys):
  spec = importlib.util.spec_from_file_location("augment_bench", os.path.join(ROOT, "benchmarks", "augment.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  mod.main(["--quick", "--models", "1", "--batch", "4", "--train", "1", "--train_steps", "1"])
  row = capsys.readouterr().out.strip().splitlines()[-1].split("|")
  assert row[1].strip() == "1" and float(row[2]) > 0 and float(row[3]) > 0
