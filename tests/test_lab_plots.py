"""The grokking lab's figures (lab_plots: arm comparison, phase matrices) from tiny synthetic runs."""
import os

import ml_collections
import numpy as np

from dlgrok import lab_plots, metrics, plot, run_config
from helpers import cell_texts, diverge, rewrite


CSTEPS = [0, 10, 100, 1000, 10000]


def step_model(model, seed, gap1, group="none", rank="full", pct=None, frac=0.5, wd=0.0, diverge_at=None, **arm):
  """One model's rows: train 1.0 from step 10, test 1.0 from `gap1` (None: never), 0.1 before."""
  out = []
  for s in CSTEPS:
    test = 1.0 if gap1 is not None and s >= gap1 else 0.1
    out.append(metrics.row(s, {"train_acc": 1.0 if s >= 10 else 0.0, "test_acc": test}, {}, model=model, seed=seed,
                           group=group, rank=rank, pct=pct, frac=frac, weight_decay=wd, cohort=group, layer_ranks={},
                           **arm))
  return diverge(out, diverge_at) if diverge_at is not None else out


def write_rows(d, rows, **cfg):
  os.makedirs(d, exist_ok=True)
  run_config.write(ml_collections.ConfigDict({"task": "mod97", "steps": CSTEPS[-1], "weight_decay": 0.0, **cfg}), d)
  rewrite(d, rows)


def test_compare_table_and_figure(tmp_path, capsys):
  d, out = str(tmp_path / "remedies"), str(tmp_path / "plots")
  usv, uv = {"variant": "usv"}, {"variant": "uv"}
  sm = {"remedy": "stablemax+orthograd", "remedy_params": {}}
  ema = {"remedy": "grokfast_ema", "remedy_params": {"alpha": 0.98, "lamb": 2.0}}
  arms = [(1000, 1000, {}), (100, 100, dict(group="all", rank="p100", pct=100.0, **usv)),
          (100, 1000, dict(group="all", rank="p100", pct=100.0, **uv)), (10, None, sm), (10000, 10000, {"wd": 1.0})]
  rows, m = [], 0
  for a, b, kw in arms:
    rows += step_model(m, 0, a, **kw) + step_model(m + 1, 1, b, **kw)
    m += 2
  rows += step_model(m, 0, 100, diverge_at=100, **ema) + step_model(m + 1, 1, 100, **ema)
  write_rows(d, rows)
  plot.main([d, "--out", out, "--compare"])
  printed = capsys.readouterr().out.splitlines()
  table = [l for l in printed if l.startswith("|")]
  assert table[0] == ("| arm | seeds | train ≥ 99 % | test ≥ 95 % | gap ≤ 1 % | speed-up (baseline / arm, gap ≤ 1 %) "
                      "| final test acc | diverged |")
  assert table[2:] == [
      "| baseline | 2 | 10 ± 0 (2/2) | 1000 ± 0 (2/2) | 1000 ± 0 (2/2) | 1.00× | 100.00 % | none |",
      "| grokfast EMA (α 0.98, λ 2) | 2 | 10 ± 0 (1/2) | 100 ± 0 (1/2) | 100 ± 0 (1/2) | 10.00× | 100.00 % "
      "| 1/2 diverged |",
      "| baseline, wd 1 | 2 | 10 ± 0 (2/2) | 10000 ± 0 (2/2) | 10000 ± 0 (2/2) | 0.10× | 100.00 % | none |",
      "| StableMax + ⊥Grad | 2 | 10 ± 0 (2/2) | 10 ± 0 (1/2) | 10 ± 0 (1/2) | – | 55.00 % | none |",
      "| all 100 % (usv) | 2 | 10 ± 0 (2/2) | 100 ± 0 (2/2) | 100 ± 0 (2/2) | 10.00× | 100.00 % | none |",
      "| all 100 % (uv) | 2 | 10 ± 0 (2/2) | 550 ± 450 (2/2) | 550 ± 450 (2/2) | 1.82× | 100.00 % | none |"]
  with open(os.path.join(out, "compare.md")) as f:
    assert f.read().splitlines() == table
  assert os.path.getsize(os.path.join(out, "compare_accuracy.png")) > 1000
  assert not os.path.exists(os.path.join(out, "accuracy_all.png"))  # --compare replaces the paper's figures
  fig = lab_plots.compare_figure(plot.load([d]))
  panels = [ax for ax in fig.axes if ax.get_lines()]
  assert len(panels) == 6 and panels[0].get_title() == "baseline (2 seeds)"
  assert panels[1].get_title().replace("\n", " ") == "grokfast EMA (α 0.98, λ 2) (2 seeds, 1 diverged)"
  grey, train, test = panels[4].get_lines()  # all 100 % (usv): the baseline's test curve, then its own
  np.testing.assert_allclose(grey.get_ydata(), [0.1, 0.1, 1.0, 1.0])
  np.testing.assert_allclose(test.get_ydata(), [0.1, 1.0, 1.0, 1.0])
  assert train.get_linestyle() == ":" and panels[0].get_xscale() == "log"


def test_compare_names_a_model_of_its_own_without_a_rank(tmp_path, capsys):
  """grokfast's pre-LN model is a dense model of group 'preln' (rank 'full'): it and its recipe arms are named,
  not ranked (this crashed formatting the missing rank)."""
  d = str(tmp_path / "published")
  l2 = {"remedy": "adam_l2+warm0", "remedy_params": {}, "wd": 0.005}
  ema = {"remedy": "grokfast_ema+adam_l2+warm0", "remedy_params": {"alpha": 0.98, "lamb": 2.0}, "wd": 0.005}
  pre = {"group": "preln", "variant": None}  # as dlgrok writes a dense model's row
  arms = [(1000, {}), (None, pre), (1000, dict(**pre, **l2)), (100, dict(**pre, **ema))]
  rows = []
  for m, (gap1, kw) in enumerate(arms):
    rows += step_model(m, 0, gap1, **kw)
  write_rows(d, rows)
  plot.main([d, "--out", str(tmp_path / "plots"), "--compare"])
  table = [l for l in capsys.readouterr().out.splitlines() if l.startswith("|")]
  assert [l.split(" | ")[0] + " | " + l.split(" | ")[5] for l in table[2:]] == [
      "| baseline | 1.00×", "| pre-LN (grokfast's model), Adam + L2 + warm-up from 0, wd 0.005 | 1.00×",
      "| pre-LN (grokfast's model), grokfast EMA (α 0.98, λ 2) + Adam + L2 + warm-up from 0, wd 0.005 | 10.00×",
      "| pre-LN (grokfast's model) | –"]


def test_phase_matrix_and_figures(tmp_path, capsys):
  d, out = str(tmp_path / "phase"), str(tmp_path / "plots")
  gap1 = {(0.3, 25.0): (1000, 10000), (0.5, 25.0): (None, None), (0.3, 50.0): (100, 1000), (0.5, 50.0): (100, None),
          (0.3, None): (10000, 10000), (0.5, None): (1000, 1000)}
  rows, m = [], 0
  for (frac, pct), steps in gap1.items():
    kw = {"group": "all", "rank": f"p{pct:g}", "pct": pct, "variant": "usv"} if pct else {}
    for seed, s in enumerate(steps):
      rows += step_model(m, seed, s, frac=frac, **kw)
      m += 1
  write_rows(d, rows)
  loaded = plot.load([d])
  ph = lab_plots.phase_matrix(loaded, "all")
  assert ph.labels == [25.0, 50.0, "baseline"] and ph.fracs == [0.3, 0.5]
  np.testing.assert_array_equal(ph.values, [[5500, np.nan], [550, 100], [10000, 1000]])
  np.testing.assert_array_equal(ph.reached, [[2, 0], [2, 1], [2, 2]])
  np.testing.assert_array_equal(ph.seeds, np.full((3, 2), 2))
  test = lab_plots.phase_matrix(loaded, "all", "final_test")
  np.testing.assert_allclose(test.values, [[1.0, 0.1], [1.0, 0.55], [1.0, 1.0]])
  fig = lab_plots.phase_figure(ph, "gap1_step", "all layers decomposed")
  top, bottom = fig.axes[:2]
  np.testing.assert_allclose(bottom.get_images()[0].get_array(), np.log10([[5500, np.nan], [550, 100]]))
  assert cell_texts(bottom, 1, 0) == ["n.w.b."] and cell_texts(bottom, 1, 1) == ["100\n(1/2)"]
  assert cell_texts(bottom, 0, 0) == ["5500"] and cell_texts(top, 0) == ["10000"]
  assert [t.get_text() for t in top.get_yticklabels()] == ["baseline"]
  assert [t.get_text() for t in bottom.get_yticklabels()] == ["25", "50"]  # lowest rank at the bottom (origin)
  assert bottom.get_ylim()[0] < bottom.get_ylim()[1]
  assert "n.w.b.: not within budget" in fig.get_suptitle().replace("\n", " ")
  plot.main([d, "--out", out, "--phase"])
  names = sorted(os.path.basename(l) for l in capsys.readouterr().out.splitlines() if l.startswith(out))
  assert names == ["phase_gap1.png", "phase_test.png"]
  ffn = [dict(r, group="ffn", model=r["model"] + 100) for r in loaded if r["group"] == "all"]
  assert sorted(lab_plots.phase_sets(loaded + ffn)) == ["_all", "_ffn"]  # one figure per group
