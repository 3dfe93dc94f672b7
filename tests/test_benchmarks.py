import importlib.util
import os

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
