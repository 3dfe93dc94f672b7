"""Steps-to-grok, summaries, curves and their markdown tables on rows with known answers."""
import numpy as np
import pytest

from dlgrok import figstyle, markdown, metrics, summary


def rows_of(steps, train, test, model=0, **kw):
  base = dict({"model": model, "group": "none", "rank": "full", "pct": None, "frac": 0.5, "seed": model}, **kw)
  return [metrics.row(s, {"train_acc": a, "test_acc": b}, {}, **base) for s, a, b in zip(steps, train, test)]


STEPS = [0, 10, 100, 1000, 10000, 100000]


def test_steps_to_grok_known_curves():
  # memorises at 100, test 0.95 at 10000, 0.99 with a 1 % gap at 100000
  r = rows_of(STEPS, [0.01, 0.5, 0.99, 1.0, 1.0, 1.0], [0.01, 0.02, 0.02, 0.5, 0.95, 0.99])
  assert summary.steps_to_grok(r) == {"memorise_step": 100, "test95_step": 10000, "test99_step": 100000,
                                       "gap1_step": 100000}
  # a zero gap at chance level does not count, float32 rounding of 0.99 does; order of rows does not matter
  r = rows_of(STEPS, [0.01, 0.98999995, 0.995, 1.0, 1.0, 1.0], [0.01, 0.5, 0.986, 0.99, 0.99, 1.0])[::-1]
  assert summary.steps_to_grok(r) == {"memorise_step": 10, "test95_step": 100, "test99_step": 1000,
                                       "gap1_step": 100}


def test_steps_to_grok_never():
  r = rows_of(STEPS, [0.01, 0.3, 1.0, 1.0, 1.0, 1.0], [0.01, 0.01, 0.3, 0.5, 0.9, 0.94])
  assert summary.steps_to_grok(r) == {"memorise_step": 100, "test95_step": None, "test99_step": None,
                                       "gap1_step": None}
  nan = rows_of(STEPS, [float("nan")] * 6, [float("nan")] * 6)  # a diverged model
  assert set(summary.steps_to_grok(nan).values()) == {None}


def grokker(model, seed, gap1, group="none", rank="full", pct=None, frac=0.5):
  """One model whose train reaches 1.0 at step 10 and test reaches 1.0 at `gap1` (None: never)."""
  test = [1.0 if gap1 is not None and s >= gap1 else 0.1 for s in STEPS]
  rows = rows_of(STEPS, [0.0] + [1.0] * 5, test, model=model)
  for r in rows:
    r.update(seed=seed, group=group, rank=rank, pct=pct, frac=frac)
  return rows


def test_summarise_speedup():
  rows = grokker(0, 0, 10000) + grokker(1, 1, 100000)  # baseline: mean 55000
  rows += grokker(2, 0, 1000, "all", "p100", 100.0) + grokker(3, 1, 1000, "all", "p100", 100.0)
  rows += grokker(4, 0, 1000, "all", "p50", 50.0) + grokker(5, 1, None, "all", "p50", 50.0)
  s = summary.summarise(rows)
  assert [(r["group"], r["rank"]) for r in s] == [("none", "full"), ("all", "p50"), ("all", "p100")]
  base, p50, p100 = s
  assert base["gap1_step"] == {"mean": 55000.0, "std": 45000.0, "reached": 2}
  assert base["memorise_step"]["mean"] == 10
  assert p100["speedup"] == pytest.approx(55.0)
  assert base["speedup"] == pytest.approx(1.0)
  assert p50["gap1_step"]["reached"] == 1 and p50["speedup"] is None  # a seed never got there
  assert p50["n"] == 2
  # seed 1 of p50 never reaches 1.0: final and best test 0.1; seed 0 ends and peaks at 1.0
  assert (p50["final_train"], p50["final_test"], p50["best_test"]) == (1.0, pytest.approx(0.55), pytest.approx(0.55))
  assert base["final_test"] == base["best_test"] == p100["best_test"] == 1.0


def test_mean_curve_and_stable_rank_matrix():
  a = rows_of([0, 1, 2], [0.0, 0.5, 1.0], [0.0, 0.0, 0.5], model=0)
  b = rows_of([0, 1, 2, 3], [0.2, 0.7, 1.0, 1.0], [0.0, 0.2, 0.9, 1.0], model=1)
  for rs, k in ((a, 1.0), (b, 3.0)):
    for r in rs:
      r["stable_rank"] = {"out": 0.1 * k, "tok_emb": 0.01 * k * r["step"]}
  steps, mean, std = summary.mean_curve([a, b], "train_acc")
  np.testing.assert_array_equal(steps, [0, 1, 2])
  np.testing.assert_allclose(mean, [0.1, 0.6, 1.0])
  np.testing.assert_allclose(std, [0.1, 0.1, 0.0])
  layers, steps, mat = summary.stable_rank_matrix([a, b])
  assert layers == ["tok_emb", "out"]
  np.testing.assert_allclose(mat, [[0.0, 0.02, 0.04], [0.2, 0.2, 0.2]])
  np.testing.assert_allclose(summary.distance(mat, np.zeros_like(mat)), np.hypot(mat[0], mat[1]))
  common, x, y = summary.align(np.array([0, 1, 2]), mat, np.array([1, 2, 5]), np.ones((2, 3)))
  np.testing.assert_array_equal(common, [1, 2])
  np.testing.assert_allclose(x, mat[:, 1:])


def diverge(rows, from_step):
  """The model of `rows` diverged from `from_step` on: null accuracies, losses and gap, as train writes them."""
  for r in rows:
    if r["step"] >= from_step:
      r.update(diverged=True, train_acc=None, test_acc=None, train_loss=None, test_loss=None, gap=None)
  return rows


def test_diverged_evaluations_never_count():
  r = diverge(rows_of(STEPS, [0.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.1, 0.1, 0.1, 1.0, 1.0]), 1000)
  assert summary.steps_to_grok(r) == {"memorise_step": 10, "test95_step": None, "test99_step": None,
                                       "gap1_step": None}  # test reached 1.0 only after diverging
  assert summary.diverged(r)
  r = rows_of(STEPS, [0.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.1, 1.0, 1.0, 1.0, 0.099])
  r[-1]["diverged"] = True  # an older row: flagged, chance accuracy kept
  assert summary.steps_to_grok(r)["gap1_step"] == 100 and summary.diverged(r)
  assert summary.final_measures([r]) == [{"best_test": 1.0, "gap": None, "diverged": True, "gap1_step": 100,
                                          "last_step": 100000}]
  assert summary.accuracies([r]) == {"final_train": None, "final_test": None, "best_test": None}
  steps, mean, std = summary.mean_curve([r, rows_of(STEPS, [1.0] * 6, [0.5] * 6, model=1)], "test_acc")
  np.testing.assert_allclose(mean, [0.25, 0.3, 0.75, 0.75, 0.75, 0.5])  # the diverged step: the other model only
  steps, mean, std = summary.mean_curve([diverge(rows_of(STEPS, [1.0] * 6, [0.5] * 6), 0)], "test_acc")
  assert np.isnan(mean).all()  # gaps, not zeros


def test_summarise_and_table_with_diverged_models():
  rows = grokker(0, 0, 1000) + grokker(1, 1, 1000) + diverge(grokker(2, 2, 1000), 10000)  # baseline: 1 diverged
  rows += grokker(3, 0, 100, "all", "p100", 100.0) + diverge(grokker(4, 1, None, "all", "p100", 100.0), 100)
  rows += diverge(grokker(5, 0, 10, "all", "p50", 50.0), 100) + diverge(grokker(6, 1, 10, "all", "p50", 50.0), 0)
  base, p50, p100 = summary.summarise(rows)
  assert (base["n"], base["diverged"], p50["diverged"], p100["diverged"]) == (3, 1, 2, 1)
  assert base["gap1_step"] == {"mean": 1000.0, "std": 0.0, "reached": 2}  # the diverged model does not reach it
  assert p100["gap1_step"] == {"mean": 100.0, "std": 0.0, "reached": 1}
  assert p100["speedup"] == pytest.approx(10.0) and base["speedup"] == pytest.approx(1.0)  # diverged left out
  assert p50["gap1_step"]["reached"] == 0 and p50["speedup"] is None
  assert (p100["final_test"], p100["best_test"]) == (1.0, 1.0)  # not the diverged seed's chance accuracy
  lines = markdown.table([base, p50, p100]).splitlines()
  assert lines[0].endswith("| best test acc | diverged |")
  assert lines[2] == ("| 50 % | none | full | 3 | 10 ± 0 (2/3) | 1000 ± 0 (2/3) | 1000 ± 0 (2/3) | 1000 ± 0 (2/3) "
                      "| 1.00× | 100.00 % / 100.00 % | 100.00 % | 1/3 diverged |")
  assert lines[3] == "| 50 % | all | p50 | 2 |" + " diverged |" * 7 + " 2/2 diverged |"
  assert lines[4].endswith("| 10.00× | 100.00 % / 100.00 % | 100.00 % | 1/2 diverged |")
  for r in (base, p50, p100):
    r["params"] = (0, 0)
  lines = markdown.group_tables([base, p50, p100]).splitlines()
  assert lines[0] == "all, 50 % training data" and lines[2].endswith("| final test acc | diverged |")
  assert lines[4] == ("| baseline | – | 10 ± 0 (2/3) | 1000 ± 0 (2/3) | 1000 ± 0 (2/3) | 1000 ± 0 (2/3) | 1.00× "
                      "| 100.00 % | 1/3 diverged |")
  assert lines[5] == "| p50 | – |" + " diverged |" * 6 + " 2/2 diverged |"
  assert lines[6].endswith("| 10.00× | 100.00 % | 1/2 diverged |")


def test_seed_table_one_line_per_model():
  rows = grokker(5, 0, 1000, "all", "p100", 100.0) + grokker(0, 1, 100000) + grokker(1, 0, None)
  rows += diverge(grokker(3, 1, 10, "all", "p50", 50.0), 100) + grokker(2, 0, 100, "all", "p50", 50.0)
  lines = markdown.seed_table(rows, order=figstyle.group_key).splitlines()
  assert lines[0] == ("| frac | group | rank | seed | train ≥ 99 % | test ≥ 95 % | test ≥ 99 % | gap ≤ 1 % "
                      "| final train / test acc | largest gap |")
  assert lines[2:] == [
      "| 50 % | none | full | 0 | 10 | never | never | never | 100.00 % / 10.00 % | 0.900 |",
      "| 50 % | none | full | 1 | 10 | 100000 | 100000 | 100000 | 100.00 % / 100.00 % | 0.900 |",
      "| 50 % | all | p50 | 0 | 10 | 100 | 100 | 100 | 100.00 % / 100.00 % | 0.900 |",
      "| 50 % | all | p50 | 1 |" + " diverged |" * 6,
      "| 50 % | all | p100 | 0 | 10 | 1000 | 1000 | 1000 | 100.00 % / 100.00 % | 0.900 |"]
