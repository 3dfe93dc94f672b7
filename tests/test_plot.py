"""Figures from tiny synthetic runs: the plotted data must equal the metrics."""
import os
import subprocess
import sys

import matplotlib
import ml_collections
import numpy as np
import pytest
from matplotlib.collections import PathCollection

from dlgrok import factors, figstyle, grids, inputs, markdown, metrics, plot, run_config, summary
from helpers import cell_texts, diverge, rewrite

STEPS = [0] + sorted({int(round(x)) for x in np.logspace(0, 4, 40)})
LAYERS = ["block_0/ffn/fc1", "out", "tok_emb"]
RANKS = {"p50": 50.0, "p100": 100.0}


def curve(mid, seed):
  """An accuracy curve rising around step `mid`; the seed shifts it a little."""
  return [float(1 / (1 + np.exp(-8 * (np.log10(s + 1) - np.log10(mid))))) * (0.995 + 0.005 * seed) for s in STEPS]


def write_run(d, frac, seeds=(0, 1), group="all", wd=0.0, ranks=RANKS):
  """config.json + metrics.jsonl as train writes them: a baseline cohort and a `group` cohort of two ranks."""
  os.makedirs(d, exist_ok=True)
  cfg = {"task": "mod97", "p": 97, "op": "x/y", "frac": frac, "steps": STEPS[-1], "group": group,
         "ranks": list(ranks), "seeds": len(seeds), "matmul_precision": "highest", "weight_decay": wd}
  run_config.write(ml_collections.ConfigDict(cfg), d)
  cohorts = [("none", "full", None)] + [(group, r, p) for r, p in ranks.items()]
  rows, model = [], 0
  for g, rank, pct in cohorts:
    for seed in seeds:
      mid = 300 * frac if g == "none" else 30 * frac * 100 / pct
      train, test = curve(3, seed), curve(mid, seed)
      for i, s in enumerate(STEPS):
        shift = 0.05 * seed if g != "none" else 0
        sr = {l: 0.9 - 0.1 * i * (j + 1) / len(STEPS) - shift for j, l in enumerate(LAYERS)}
        values = {"train_loss": 1.0, "train_acc": train[i], "test_loss": 1.0, "test_acc": test[i]}
        rows.append(metrics.row(s, values, sr, 0.1 * i, model=model, cohort="baseline" if g == "none" else g,
                                seed=seed, group=g, rank=rank, pct=pct, frac=frac, weight_decay=wd,
                                layer_ranks={} if g == "none" else {"tok_emb": 6}))
      model += 1
  rewrite(d, rows)
  return rows


def mean_of(rows, group, rank, field, frac=None):
  sel = [r for r in rows if r["group"] == group and r["rank"] == rank and (frac is None or r["frac"] == frac)]
  return np.array([np.mean([r[field] for r in sel if r["step"] == s]) for s in STEPS])


@pytest.fixture
def runs(tmp_path):
  a, b = str(tmp_path / "f50"), str(tmp_path / "f80")
  rows = write_run(a, 0.5) + write_run(b, 0.8)
  return [a, b], rows


def test_accuracy_figure_lines_equal_metrics(runs):
  dirs, rows = runs
  fig = plot.accuracy_figure(plot.load(dirs), "all")
  axes = fig.axes
  assert len(axes) == 2
  assert [ax.get_title() for ax in axes] == ["50 % training data", "80 % training data"]
  for ax, frac in zip(axes, (0.5, 0.8)):
    assert ax.get_xscale() == "log"
    lines = ax.get_lines()
    assert len(lines) == 6  # (baseline + 2 ranks) x (train, test)
    # order: baseline train, baseline test, p50 train, p50 test, p100 train, p100 test
    expect = [(g, r, f) for g, r in (("none", "full"), ("all", "p50"), ("all", "p100"))
              for f in ("train_acc", "test_acc")]
    for line, (g, r, field) in zip(lines, expect):
      np.testing.assert_array_equal(line.get_xdata(), STEPS[1:])  # step 0 is off the log axis
      np.testing.assert_allclose(line.get_ydata(), mean_of(rows, g, r, field, frac)[1:])
      assert line.get_linestyle() == (":" if field == "train_acc" else "-")
    assert matplotlib.colors.to_hex(lines[0].get_color()) == "#000000"
    assert len({matplotlib.colors.to_hex(l.get_color()) for l in lines}) == 3
  assert "train (dotted)" in fig.get_suptitle()
  assert axes[0].get_xlabel() == "optimisation step" and axes[0].get_ylabel() == "accuracy"


def test_stable_rank_figures(runs):
  dirs, rows = runs
  rows = plot.load(dirs)
  fig = plot.stable_rank_figure(rows, "all", 0.5)
  images = [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_images()]
  assert len(images) == 3  # baseline, 100 %, 50 %
  cells = summary.cells(rows)
  layers = summary.layer_order(LAYERS)
  _, _, base = summary.stable_rank_matrix(cells[("none", "full", 0.5)], layers)
  _, _, p100 = summary.stable_rank_matrix(cells[("all", "p100", 0.5)], layers)
  np.testing.assert_allclose(images[0], base)
  np.testing.assert_allclose(images[1], p100)
  np.testing.assert_allclose(p100[:, 0], [0.875] * 3)  # mean over seeds 0, 1 of 0.9 - 0.05 seed
  diff = plot.stable_rank_figure(rows, "all", 0.5, diff=True)
  images = [ax.get_images()[0].get_array() for ax in diff.axes if ax.get_images()]
  assert len(images) == 2
  np.testing.assert_allclose(images[0], p100 - base)
  dist = [l for ax in diff.axes for l in ax.get_lines() if l.get_color() == "black"][0]
  np.testing.assert_allclose(dist.get_ydata(), np.sqrt(3) * 0.025)  # every layer differs by 0.025


def test_grid_figure(runs):
  dirs, rows = runs
  fig = grids.grid_figure(plot.load(dirs), "best_test")
  ax = fig.axes[0]
  assert ax.get_title() == "50 % training data"
  texts = [float(t.get_text()) for t in ax.texts]
  best = lambda g, r: 100 * np.mean([max(x["test_acc"] for x in rows if x["model"] == m and x["frac"] == 0.5)
                                     for m in {x["model"] for x in rows if x["group"] == g and x["rank"] == r}])
  assert texts == pytest.approx([round(best("none", "full"), 1), round(best("all", "p50"), 1),
                                 round(best("all", "p100"), 1)], abs=0.051)
  assert [t.get_text() for t in ax.get_xticklabels()] == ["base", "50", "100"]


def test_factor_figures(tmp_path):
  d = str(tmp_path / "run")
  write_run(d, 0.5, seeds=(0,))
  rng = np.random.default_rng(0)
  data = {"m0/tok_emb/A": rng.normal(size=(8, 6))}
  for m in (1, 2):  # p50, p100 models; rank 6 live of 6, U scaled by m
    q, _ = np.linalg.qr(rng.normal(size=(8, 6)))
    data.update({f"m{m}/tok_emb/U": m * q, f"m{m}/tok_emb/S": np.diag(np.arange(6.0, 0.0, -1)),
                 f"m{m}/tok_emb/Vt": np.eye(6)})
  np.savez(os.path.join(d, "factors.npz"), **data)
  entries = factors.read(d, plot.load([d]), plot.rank_label)["tok_emb"]
  assert [label for label, _ in entries] == ["baseline", "rank 50 %", "rank 100 %"]
  fig = plot.factor_figure(entries, "tok_emb")
  imgs = [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_images()]
  assert len(imgs) == 9  # 3 rows x 3 labels
  np.testing.assert_allclose(imgs[0], np.eye(6), atol=1e-12)  # baseline U^T U from an SVD
  np.testing.assert_allclose(imgs[2], 4 * np.eye(6), atol=1e-12)  # model 2: U = 2 Q
  np.testing.assert_allclose(imgs[5], np.eye(6))  # p100 Vt Vt^T
  np.testing.assert_allclose(np.diag(imgs[8]), np.log10(np.arange(6.0, 0.0, -1)))
  assert np.ma.getmaskarray(imgs[8])[0, 1]  # zeros are masked, drawn white
  spec = plot.spectra_figure(entries, "tok_emb")
  np.testing.assert_allclose(spec.axes[0].get_lines()[2].get_ydata(), 2 * np.arange(6.0, 0.0, -1))


def test_cli_writes_pngs_and_table(runs, tmp_path, capsys):
  dirs, rows = runs
  out = str(tmp_path / "plots")
  plot.main(dirs + ["--out", out, "--table", "--pdf"])
  printed = capsys.readouterr().out.splitlines()
  files = [l for l in printed if l.startswith(out)]
  names = sorted(os.path.basename(f) for f in files)
  assert "accuracy_all.png" in names and "accuracy_all.pdf" in names
  assert "stable_rank_all_f50.png" in names and "stable_rank_diff_all_f80.png" in names
  assert "grid_test_acc.png" in names and "grid_gap.png" in names
  assert all(os.path.getsize(f) > 1000 for f in files)
  table = [l for l in printed if l.startswith("|")]
  assert len(table) == 2 + 6  # header, rule, (baseline + 2 ranks) x 2 fracs
  assert table[2].startswith("| 50 % | none | full | 2 |")
  found = summary.summarise(plot.load(dirs))
  assert found[0]["speedup"] == pytest.approx(1.0)
  assert found[2]["speedup"] > found[1]["speedup"] > 1  # p100 groks earliest in the synthetic runs


def test_shared_baseline_read_once(tmp_path):
  a, b = str(tmp_path / "all"), str(tmp_path / "ffn")
  rows = write_run(a, 0.5, group="all") + write_run(b, 0.5, group="ffn")
  loaded = plot.load([a, b])
  assert len(loaded) == len(rows) - 2 * len(STEPS)  # the second run's two baseline models are the same models
  found = {(r["group"], r["rank"]): r for r in summary.summarise(loaded)}
  assert found[("none", "full")]["n"] == 2 and found[("ffn", "p50")]["n"] == 2
  fig = plot.accuracy_figure(loaded, "ffn")
  assert len(fig.axes[0].get_lines()) == 6
  np.testing.assert_allclose(fig.axes[0].get_lines()[1].get_ydata(), mean_of(rows, "none", "full", "test_acc")[1:])


def test_weight_decay_sweep(tmp_path, capsys):
  dirs = [str(tmp_path / f"wd{wd}") for wd in (0.0, 0.1)]
  rows = write_run(dirs[0], 0.5, group="fc1", wd=0.0) + write_run(dirs[1], 0.5, group="fc1", wd=0.1)
  for r in rows[len(rows) // 2:]:
    r["weight_decay"] = 0.1
  loaded = plot.load(dirs)
  assert len(loaded) == len(rows)  # a different weight decay is a different model
  fig = grids.grid_figure(loaded, "best_test", row_key="weight_decay", panel_key="group")
  ax = fig.axes[0]
  assert ax.get_title() == "decomposed: FC1"
  assert [t.get_text() for t in ax.get_yticklabels()] == ["0.0", "0.1"]
  assert len(ax.texts) == 2 * 3  # (base, 50, 100) per weight decay
  plot.main(dirs + ["--out", str(tmp_path / "plots"), "--table"])
  out = capsys.readouterr().out
  assert "accuracy_fc1_wd0.png" in out and "accuracy_fc1_wd0.1.png" in out
  assert out.count("| 50 % | none | full | 2 |") == 2  # one table per weight decay


def test_four_panel_grid_is_two_by_two(tmp_path):
  """Figure 24's four layer sets: a 2 x 2 grid in the panels' order, y labels on the left column only."""
  dirs = [str(tmp_path / g) for g in ("l3", "l1", "all", "l2")]
  for d in dirs:
    write_run(d, 0.5, group=os.path.basename(d))
  fig = grids.grid_figure(plot.load(dirs), "best_test", row_key="weight_decay", panel_key="group")
  spans = [(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start) for ax in fig.axes]
  assert spans == [(0, 0), (0, 1), (1, 0), (1, 1)]
  assert [ax.get_title() for ax in fig.axes] == ["decomposed: all layers", "decomposed: layer 1",
                                                 "decomposed: layer 2", "decomposed: layer 3"]
  assert [bool(ax.get_ylabel()) for ax in fig.axes] == [True, False, True, False]


def test_gzipped_metrics_read_like_plain(tmp_path):
  """results/ keeps metrics.jsonl.gz: plot and inspect read it through metrics.read like the plain file."""
  import gzip
  import shutil
  d = str(tmp_path / "run")
  rows = write_run(d, 0.8)
  with open(os.path.join(d, "metrics.jsonl"), "rb") as f, gzip.open(os.path.join(d, "metrics.jsonl.gz"), "wb") as g:
    shutil.copyfileobj(f, g)
  os.remove(os.path.join(d, "metrics.jsonl"))
  assert metrics.read(d) == rows == metrics.read(os.path.join(d, "metrics.jsonl.gz"))


def test_older_rows_are_read_in_todays_form(tmp_path):
  """Rows written before variant, remedy, remedy_params, frac and weight_decay were fields (results/ holds some)
  read as today's: the decomposed model's variant is usv, no remedy, frac and weight decay from config.json."""
  d = str(tmp_path / "run")
  rows = write_run(d, 0.8, wd=0.1)
  old = ("variant", "remedy", "remedy_params", "frac", "weight_decay")
  rewrite(d, [{k: v for k, v in r.items() if k not in old} for r in rows])
  assert metrics.read(d) == rows
  assert {r["variant"] for r in rows} == {None, "usv"} and {r["weight_decay"] for r in rows} == {0.1}
  np.testing.assert_allclose(plot.accuracy_figure(plot.load([d]), "all").axes[0].get_lines()[1].get_ydata(),
                             mean_of(rows, "none", "full", "test_acc")[1:])


def test_legend_names_the_star_only_where_one_is_drawn(tmp_path):
  d = str(tmp_path / "run")
  rows = write_run(d, 0.5, seeds=(0,))
  fig = plot.accuracy_figure(plot.load([d]), "all")
  stars = lambda fig: [c for ax in fig.axes for c in ax.collections if isinstance(c, PathCollection)]
  labels = [t.get_text() for t in fig.legends[0].get_texts()]
  assert stars(fig) and labels[-1] == "1 % gap (mean)"
  assert "1 seed" in fig.get_suptitle() and "std" not in fig.get_suptitle()
  for r in rows:
    r["test_acc"] = 0.5 * r["test_acc"]  # no model comes within 1 % of its train accuracy
  rewrite(d, rows)
  fig = plot.accuracy_figure(plot.load([d]), "all")
  assert not stars(fig)
  assert "1 % gap (mean)" not in [t.get_text() for t in fig.legends[0].get_texts()]


def test_diverged_models_marked_in_grid_accuracy_and_table(tmp_path, capsys):
  d = str(tmp_path / "run")
  rows = write_run(d, 0.5)
  by = lambda g, r, seed=None: [x for x in rows if x["group"] == g and x["rank"] == r and seed in (None, x["seed"])]
  diverge(by("all", "p50"), STEPS[10])  # every p50 model
  diverge(by("all", "p100", seed=1), 100)  # one of two p100 models
  rewrite(d, rows)
  loaded = plot.load([d])
  fig = grids.grid_figure(loaded, "best_test")
  ax = fig.axes[0]
  image = ax.get_images()[0].get_array()
  assert np.ma.getmaskarray(image)[0, 1] or np.isnan(image[0, 1])  # no colour against the baseline
  assert cell_texts(ax, 1) == ["div."] and len(ax.patches) == 1 and ax.patches[0].get_hatch() == "///"
  best0 = 100 * max(x["test_acc"] for x in by("all", "p100", seed=0))
  assert cell_texts(ax, 2) == [f"{best0:.1f}*"]  # the seed that did not diverge
  assert "* 1 of 2 diverged, left out" in fig.get_suptitle() and "div.: every model diverged" in fig.get_suptitle()
  fig = plot.accuracy_figure(loaded, "all")
  labels = [t.get_text() for t in fig.legends[0].get_texts()]
  assert labels[:3] == ["baseline", "rank 50 % (2 diverged)", "rank 100 % (1 diverged)"]
  p50_test = fig.axes[0].get_lines()[3].get_ydata()
  assert np.isnan(p50_test[9:]).all() and not np.isnan(p50_test[:9]).any()  # gaps from STEPS[10], not zeros
  plot.main([d, "--out", str(tmp_path / "plots"), "--table"])
  table = [l for l in capsys.readouterr().out.splitlines() if l.startswith("|")]
  assert table[3] == "| 50 % | all | p50 | 2 |" + " diverged |" * 7 + " 2/2 diverged |"
  assert table[4].endswith(" 1/2 diverged |") and table[2].endswith(" none |")
  found = summary.summarise(loaded)
  assert found[2]["gap1_step"]["reached"] == 1 and found[2]["speedup"] == pytest.approx(
      found[0]["gap1_step"]["mean"] / found[2]["gap1_step"]["mean"])  # the diverged seed is left out


def test_grid_tables_give_the_figure_numbers(tmp_path, capsys):
  """App. E's table: weight decay x rank per layer group, mean best test accuracy ± the seeds' spread, diverged
  models left out and starred, and each column's trained / inference parameters."""
  dirs = [str(tmp_path / f"wd{wd}") for wd in (0.0, 0.1)]
  rows = write_run(dirs[0], 0.5, group="fc1") + write_run(dirs[1], 0.5, group="fc1", wd=0.1)
  half = len(rows) // 2
  for r in rows[half:]:
    r["weight_decay"] = 0.1
  for r in rows[:half]:
    r["weight_decay"] = 0.0
  for r in rows:
    if r["group"] != "none":
      r.update(trained_params=150 * int(r["pct"]), inference_params=100 * int(r["pct"]), dense_params=10000,
               test_acc=r["test_acc"] * (0.9 if r["rank"] == "p50" else 1.0))
  sel = lambda wd, g, rank, seed: [r for r in rows if (r["weight_decay"], r["group"], r["rank"], r["seed"])
                                   == (wd, g, rank, seed)]
  diverge(sel(0.1, "fc1", "p50", 1), STEPS[-5])
  rewrite(dirs[0], rows[:half])
  rewrite(dirs[1], rows[half:])

  def cell(wd, g, rank, seeds=(0, 1)):
    best = [100 * max(r["test_acc"] for r in sel(wd, g, rank, s) if r["test_acc"] is not None) for s in seeds]
    return f"{np.mean(best):.2f} ± {np.ptp(best):.2f}"

  lines = grids.grid_tables(plot.load(dirs)).splitlines()
  assert lines[0] == "Best test accuracy in %, decomposed: FC1: mean ± spread over 2 seeds"
  assert lines[2] == "| weight decay | baseline | 50 % | 100 % |"
  assert lines[4] == f"| 0 | {cell(0.0, 'none', 'full')} | {cell(0.0, 'fc1', 'p50')} | {cell(0.0, 'fc1', 'p100')} |"
  assert lines[5] == (f"| 0.1 | {cell(0.1, 'none', 'full')} | {cell(0.1, 'fc1', 'p50', (0,))}* | "
                      f"{cell(0.1, 'fc1', 'p100')} |")  # the diverged seed left out, the cell starred
  assert lines[6] == "| trained / inference params, % | 100 / 100 | 75.0 / 50.00 | 150.0 / 100.00 |"
  assert cell(0.0, "fc1", "p50") != cell(0.0, "fc1", "p100")  # the columns are not the same numbers
  plot.main(dirs + ["--out", str(tmp_path / "plots"), "--table"])
  assert "\n".join(lines) in capsys.readouterr().out


def test_diverged_baseline_is_no_colour_reference(tmp_path):
  d = str(tmp_path / "run")
  rows = write_run(d, 0.5)
  diverge([x for x in rows if x["group"] == "none"], 3)
  rewrite(d, rows)
  ax = grids.grid_figure(plot.load([d]), "best_test").axes[0]
  assert cell_texts(ax, 0) == ["div."]
  assert np.ma.getmaskarray(ax.get_images()[0].get_array()).all() or np.isnan(ax.get_images()[0].get_array()).all()
  assert len(ax.texts) == 3 and all(t.get_color() == "black" for t in ax.texts)


def test_steps_to_gap_grid_counts_models_that_never_get_there(tmp_path):
  d = str(tmp_path / "run")
  rows = write_run(d, 0.5)
  for r in rows:
    if r["rank"] == "p100" or (r["rank"], r["seed"]) == ("p50", 1):
      r["test_acc"] *= 0.5  # never within 1 % of train
  rewrite(d, rows)
  first = lambda rank, seed: summary.steps_to_grok([r for r in rows if (r["rank"], r["seed"]) == (rank, seed)])
  base = [first("full", s)["gap1_step"] for s in (0, 1)]
  reached = first("p50", 0)["gap1_step"]
  assert None not in base and reached is not None and reached < STEPS[-1] and first("p50", 1)["gap1_step"] is None
  ax = grids.grid_figure(plot.load([d]), "gap1_step").axes[0]
  assert cell_texts(ax, 0) == [f"{np.mean(base):.0f}"]
  assert cell_texts(ax, 1) == [f"≥{(reached + STEPS[-1]) / 2:.0f}\n1/2"]  # the other seed counts as the run's end
  assert cell_texts(ax, 2) == ["never"]
  better = ax.get_images()[0].get_array()
  np.testing.assert_allclose(better[0, 1], np.log10(np.mean(base) / ((reached + STEPS[-1]) / 2)), rtol=1e-6)


def test_ranks_option_keeps_the_baseline_and_the_named_ranks(tmp_path):
  d = str(tmp_path / "run")
  write_run(d, 0.5)
  rows = plot.only_ranks(plot.load([d]), "p50")
  assert {(r["group"], r["rank"]) for r in rows} == {("none", "full"), ("all", "p50")}
  with pytest.raises(inputs.InputError) as e:
    plot.main([d, "--ranks", "p50,p16", "--out", str(tmp_path / "plots")])
  assert str(e.value) == "--ranks p16: no such rank in these runs; they have p50, p100"


def test_grid_results_script_copies_finished_runs_and_draws_the_grid(tmp_path):
  root, out = tmp_path / "runs", tmp_path / "res"
  write_run(str(root / "grid80" / "none_f80"), 0.8)
  write_run(str(root / "grid80" / "attn_f80"), 0.8, group="attn", ranks={"p12.5": 12.5, "p100": 100.0})
  ffn = [r for r in write_run(str(root / "grid80" / "ffn_f80"), 0.8, group="ffn") if r["step"] <= 1000]
  rewrite(str(root / "grid80" / "ffn_f80"), ffn)  # still training
  env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
  script = os.path.join(os.path.dirname(os.path.dirname(__file__)), "launch", "grid80_results.sh")
  run = subprocess.run(["bash", script, str(root), str(out)], env=env, capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-2000:]
  wall, last, full = max(r["wall"] for r in ffn), max(r["step"] for r in ffn), 0.1 * (len(STEPS) - 1)
  done = f"| 6 | {STEPS[-1]} / {STEPS[-1]} | {full / 3600:.2f} | {6 * STEPS[-1] / full:.1f} |"
  assert run.stdout.splitlines()[2:] == [
      f"| none_f80 {done}", f"| attn_f80 {done}",
      f"| ffn_f80 | 6 | {last} / {STEPS[-1]} (training: not copied) | {wall / 3600:.2f} | {6 * last / wall:.1f} |"]
  assert sorted(os.listdir(out)) == ["attn_f80", "none_f80", "plots", "runs.md", "tables.md"]
  assert metrics.read(str(out / "attn_f80")) == metrics.read(str(root / "grid80" / "attn_f80"))
  tables = (out / "tables.md").read_text()
  assert "| 80 % | attn | p12.5 | 2 |" in tables and "ffn" not in tables and ".png" not in tables
  assert "\n\nattn, 80 % training data\n\n| rank | trained / inference params |" in tables
  per_model = tables.split("\nEach model:")[1].splitlines()
  models = summary.by_model(plot.load([str(out / "none_f80"), str(out / "attn_f80")]))
  assert sum(line.startswith("| 80 % |") for line in per_model) == len(models) > 6
  for start in ("| 80 % | none | full | 0 |", "| 80 % | attn | p12.5 | 0 |", "| 80 % | attn | p100 | 1 |"):
    assert sum(line.startswith(start) for line in per_model) == 1, start
  plots = sorted(os.listdir(out / "plots"))
  assert "figure9_attn_rank16.png" in plots and "accuracy_attn.png" in plots and "grid_gap1_steps.png" in plots
  empty = subprocess.run(["bash", script, str(tmp_path / "nothing"), str(out)], env=env, capture_output=True,
                         text=True, timeout=60)
  assert empty.returncode == 2 and "error: no runs under" in empty.stderr


def test_group_tables_one_per_panel_in_the_papers_order(tmp_path):
  dirs = [str(tmp_path / g) for g in ("tok", "attn")]
  rows = write_run(dirs[0], 0.8, group="tok") + write_run(dirs[1], 0.8, group="attn")
  for r in rows:
    r.update(trained_params=1000 + int(10 * (r["pct"] or 0)), inference_params=900 + int(r["pct"] or 0))
  rewrite(dirs[0], rows[:len(rows) // 2])
  rewrite(dirs[1], rows[len(rows) // 2:])
  found = summary.summarise(plot.load(dirs))
  text = markdown.group_tables(found, order=figstyle.group_key)
  tables = [t.splitlines() for t in text.split("\n\n") if t.startswith("|")]
  assert [t for t in text.split("\n\n") if not t.startswith("|")] == ["tok, 80 % training data",
                                                                     "attn, 80 % training data"]
  assert [[line.split(" | ")[:2] for line in t[2:]] for t in tables] == [
      [["| baseline", "1,000 / 900"], ["| p50", "1,500 / 950"], ["| p100", "2,000 / 1,000"]]] * 2
  cell = next(r for r in found if (r["group"], r["rank"]) == ("attn", "p50"))
  assert tables[1][3].split(" | ")[2:] == [markdown.measure_text(cell[m], 2) for m in summary.MEASURES] + [
      "–" if cell["speedup"] is None else f"{cell['speedup']:.2f}×", f"{100 * cell['final_test']:.2f} %", "none |"]
