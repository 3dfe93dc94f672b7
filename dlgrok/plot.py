"""Paper-style figures from metrics files: python -m dlgrok.plot WORKDIR... [--out DIR] [--pdf] [--table].

Accuracy curves (Figures 3-15, 25-28; --ranks picks ranks, as Figure 9), stable-rank heat maps (20-23) and their
difference to the baseline (21), test accuracy / generalisation gap by layer group x rank (24, 29-32) and steps to
a 1 % gap on the same grid (where some model reaches one), and, where <workdir>/factors.npz exists,
U^T U, Vt Vt^T, log10|S| and spectra of the factorised layers after training (16-19). Diverged models are
marked, not shown as results: gaps in curves, "(k diverged)" in legends, "div." or "*" in grids, counts in tables.
--compare / --phase (lab_plots): remedies compared arm by arm; rank x training-fraction phase diagrams.
"""
import io

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from dlgrok import factor_measures, factors, grids, inputs, lab_plots, markdown, metrics, summary, workdir as wd
from dlgrok.figstyle import group_key, group_name, rank_label, fmt_step, suptitle  # noqa: F401 (and the style)

BASE, MODEL = "tab:blue", "tab:orange"  # baseline / decomposed in Figures 20-23


def load(workdirs):
  """Rows of all workdirs (metrics.read's, upgraded), each tagged with its run (workdir).

  A model already read from an earlier workdir (same arm and seed: typically the baseline cohort that every run
  trains beside its own) is read once, so it is not counted twice.
  """
  rows, owner = [], {}
  for w in workdirs:
    inputs.check_run_dir(w)
    for r in read_rows(w):
      r["run"] = w
      key = summary.arm_key(r) + (r["seed"],)
      if owner.setdefault(key, (w, r["model"])) == (w, r["model"]):
        rows.append(r)
  return rows


def read_rows(workdir):
  """metrics.read(workdir), with a missing, misplaced or binary metrics file as an InputError."""
  p = metrics.path(workdir)
  if wd.isdir(p):
    raise inputs.InputError(f"{p} is a directory, not a file of metrics rows; move it away")
  if not wd.exists(p) and not wd.exists(p + ".gz"):
    raise inputs.InputError(f"{workdir} has no metrics.jsonl yet: its run has not finished its first evaluation")
  try:
    return metrics.read(workdir)
  except UnicodeDecodeError:
    raise inputs.InputError(f"{p} is not text (binary bytes); restore it from a copy") from None


def only_ranks(rows, ranks):
  """The baseline's rows and those of decomposed models at the rank labels in `ranks` ("p12.5,r16")."""
  want = ranks.split(",")
  have = {r["rank"]: r for r in rows if r["group"] != "none"}
  unknown = [k for k in want if k not in have]
  if unknown:
    labels = sorted(have, key=lambda k: summary.rank_sort_key(have[k]))
    raise inputs.InputError(f"--ranks {','.join(unknown)}: no such rank in these runs; they have "
                            f"{', '.join(labels) or 'none'}")
  return [r for r in rows if r["group"] == "none" or r["rank"] in want]


def check_plottable(rows, workdirs):
  """Refuses (inputs.NothingYet) rows with nothing to draw on a log step axis: none, or only step 0 (a run's
  first minute)."""
  where = ", ".join(workdirs)
  if not rows:
    raise inputs.NothingYet(f"{where}: metrics.jsonl has no rows yet; plot again after the first evaluation")
  if all(r["step"] == 0 for r in rows):
    raise inputs.NothingYet(f"{where}: nothing to plot yet: the metrics hold only step 0 (the first evaluation); "
                            "plot again after the next evaluation")


def sorted_cells(rows, group, frac):
  """[(key, models)] of `group` at `frac`, lowest rank first."""
  cells = summary.cells(rows)
  keys = [k for k in cells if k[0] == group and k[2] == frac]
  return [(k, cells[k]) for k in sorted(keys, key=lambda k: summary.rank_sort_key(cells[k][0][0]))]


def accuracy_figure(rows, group):
  """Mean train (dotted) and test (solid) accuracy over seeds vs step, log-x, one panel per train fraction.

  Shaded bands are +-1 std over seeds; stars mark the first step of the mean curves with a 1 % gap.
  Step 0 is left out (log axis); diverged evaluations are gaps, and legends count the models that diverged.
  """
  fracs = sorted({summary.frac_key(r["frac"]) for r in rows if r["group"] == group})
  fig, axes = plt.subplots(1, len(fracs), figsize=(3.4 * len(fracs) + 0.5, 3.6), squeeze=False, sharey=True,
                           layout="constrained")
  handles, diverged, starred = {}, {}, False
  for ax, frac in zip(axes[0], fracs):
    cells = sorted_cells(rows, "none", frac) + (sorted_cells(rows, group, frac) if group != "none" else [])
    colours = iter(f"C{i % 10}" for i in range(100))
    drawn, last = False, 1
    for (g, rank, _), models in cells:
      colour = "black" if g == "none" else next(colours)
      curves = {}
      for field, style in (("train_acc", ":"), ("test_acc", "-")):
        steps, mean, std = summary.mean_curve(models, field)
        on = steps > 0
        drawn, last = drawn or bool(np.isfinite(mean[on]).any()), max(last, *steps[on], 1)
        ax.plot(steps[on], mean[on], style, color=colour, lw=1.3)
        ax.fill_between(steps[on], (mean - std)[on], (mean + std)[on], color=colour, alpha=0.15, lw=0)
        curves[field] = (steps, mean)
      star = mean_gap1(*curves["train_acc"], curves["test_acc"][1])
      if star:
        starred = True
        ax.scatter([star[0]], [star[1]], marker="*", s=70, color=colour, edgecolor="white", lw=0.5, zorder=4)
      handles[rank_label(g, rank)] = Line2D([], [], color=colour, lw=2)
      diverged[rank_label(g, rank)] = diverged.get(rank_label(g, rank), 0) + sum(map(summary.diverged, models))
    if not drawn:  # every model diverged: a log axis cannot autoscale to no data
      ax.set_xlim(1, max(last, 10))
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("optimisation step")
    ax.set_title(f"{frac * 100:g} % training data")
    ax.grid(alpha=0.3, which="major")
  axes[0, 0].set_ylabel("accuracy")
  seeds = len({r["seed"] for r in rows if r["group"] == group})
  what = "Baseline" if group == "none" else f"Decomposed learning on {group_name(group)}"
  spread = f"mean ± std of {seeds} seeds" if seeds > 1 else "1 seed"
  suptitle(fig, f"{what}\ntrain (dotted) and test (solid) accuracy, {spread}")
  styles = {"train": Line2D([], [], color="grey", ls=":"), "test": Line2D([], [], color="grey")}
  if starred:  # the legend names the star only where one is drawn
    styles["1 % gap (mean)"] = Line2D([], [], color="grey", ls="", marker="*", markersize=8)
  labels = [f"{k} ({diverged[k]} diverged)" if diverged[k] else k for k in handles]
  fig.legend(list(handles.values()) + list(styles.values()), labels + list(styles),
             loc="outside lower center", ncol=min(len(handles) + len(styles), int(fig.get_figwidth() / 1.7)),
             frameon=False, handlelength=1.5, columnspacing=1.0)
  return fig


def mean_gap1(steps, train, test):
  """(step, test accuracy) where the mean curves first reach a 1 % gap, or None."""
  curve = [{"step": int(s), "train_acc": a, "test_acc": b} for s, a, b in zip(steps, train, test)]
  s = summary.steps_to_grok(curve)["gap1_step"]
  return None if s is None or s == 0 else (s, float(test[list(steps).index(s)]))


def curve_at(models, field, steps):
  s, mean, _ = summary.mean_curve(models, field)
  return mean[np.searchsorted(s, steps)]


def stable_rank_figure(rows, group, frac, diff=False):
  """Figures 20-23 (diff=False: baseline + each rank) or 21 (diff=True: decomposed - baseline): per rank a
  heat map of the mean normalised stable rank per layer through training, the accuracies (baseline blue,
  decomposed orange; train dotted, test solid) and the Euclidean distance to the baseline over layers."""
  (_, base), = sorted_cells(rows, "none", frac)
  cols = sorted_cells(rows, group, frac)[::-1]  # 100 % first, as the paper
  cols = cols if diff else [(("none", "full", frac), base)] + cols
  layers = summary.layer_order({l for _, ms in cols + [(None, base)] for rs in ms for l in rs[0]["stable_rank"]})
  _, bsteps, bmat = summary.stable_rank_matrix(base, layers)
  ncols = min(3, len(cols))
  nrows = -(-len(cols) // ncols)
  fig, axes = plt.subplots(3 * nrows, ncols, figsize=(3.3 * ncols + 1.6, 5.2 * nrows + 0.6), squeeze=False,
                           height_ratios=[3, 1.1, 1.1] * nrows, layout="constrained")
  mats = []
  for (g, rank, _), models in cols:
    _, steps, mat = summary.stable_rank_matrix(models, layers)
    mats.append(summary.align(steps, mat, bsteps, bmat))
  lim = max(np.nanmax(np.abs(m - b)) for _, m, b in mats) or 1.0
  for ax in axes[:, len(cols) % ncols or ncols:][-3:].ravel():
    ax.set_axis_off()  # the empty places of the last row
  for n, (((g, rank, _), models), (steps, m, b)) in enumerate(zip(cols, mats)):
    i, j = divmod(n, ncols)
    top, acc, dist = axes[3 * i:3 * i + 3, j]
    x = np.arange(len(steps))
    shown = m - b if diff else m
    im = top.imshow(shown, aspect="auto", interpolation="nearest", cmap="RdBu_r" if diff else "viridis",
                    vmin=-lim if diff else 0, vmax=lim if diff else 1)
    top.set_title(rank_label(g, rank))
    top.set_yticks(range(len(layers)), layers if j == 0 else [""] * len(layers), fontsize=8)
    for ms, colour in ((base, BASE), (models, MODEL))[: 1 if g == "none" else 2]:
      for field, style in (("train_acc", ":"), ("test_acc", "-")):
        acc.plot(x, curve_at(ms, field, steps), style, color=colour, lw=1.1)
    acc.set_ylim(-0.02, 1.02)
    d = summary.distance(m, b)
    dist.plot(x, d, color="black", lw=1.1)
    dist.set_ylim(0, 1.1 * np.nanmax(d) or 1e-3)
    dist.ticklabel_format(axis="y", useOffset=False)
    if j == 0:
      acc.set_ylabel("accuracy")
    if g != "none" and (j == 0 or (n == 1 and not diff)):
      dist.set_ylabel("distance to\nbaseline")
    if g == "none":
      dist.tick_params(axis="y", labelleft=False, left=False)
      dist.set_frame_on(False)
    ticks = np.linspace(0, len(x) - 1, 4).astype(int)
    for ax in (top, acc, dist):
      ax.set_xlim(-0.5, len(x) - 0.5)
      ax.set_xticks(ticks, [fmt_step(int(steps[t])) for t in ticks] if ax is dist else [])
    dist.set_xlabel("step (evaluation points)")
  fig.colorbar(im, ax=axes[0::3, :].ravel().tolist(), shrink=0.9,
               label="stable rank: decomposed - baseline" if diff else "normalised stable rank")
  what = "Decomposed minus baseline normalised stable rank" if diff else "Normalised stable rank"
  suptitle(fig, f"{what} per layer through training: {group_name(group)} decomposed, {frac * 100:g} % training "
                "data, mean over seeds\naccuracy: baseline blue, decomposed orange (train dotted, test solid)")
  return fig


def factor_figure(entries, layer):
  """Figures 16-18: mean U^T U, Vt Vt^T and log10|S| over models per label (white = exactly zero)."""
  fig, axes = plt.subplots(3, len(entries), figsize=(2.3 * len(entries) + 1.0, 6.6), squeeze=False,
                           layout="constrained")
  cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
  for j, (label, models) in enumerate(entries):
    g = [factor_measures.grams(*f) for f in models]
    utu, vvt, s = (np.mean([x[i] for x in g], axis=0) for i in range(3))
    orth = np.mean([factor_measures.orthogonality(f[0], f[2], f[3]) for f in models], axis=0)
    off = np.mean([factor_measures.offdiag_mass(f[1], f[3]) for f in models])
    with np.errstate(divide="ignore"):
      logs = np.where(s > 0, np.log10(s), np.nan)
    for ax, img, title, cm in ((axes[0, j], utu, f"{label}\n$U^TU$: $\\|\\cdot-I\\|_F$={orth[0]:.2f}", "RdBu_r"),
                               (axes[1, j], vvt, f"$V^TV$: $\\|\\cdot-I\\|_F$={orth[1]:.2f}", "RdBu_r"),
                               (axes[2, j], logs, f"$\\log_{{10}}|\\Sigma|$, off-diag {off:.2f}", cmap)):
      lim = np.nanmax(np.abs(img)) if cm == "RdBu_r" else None
      im = ax.imshow(img, cmap=cm, vmin=-lim if lim else None, vmax=lim, interpolation="nearest")
      ax.set_title(title)
      ax.set_xticks([])
      ax.set_yticks([])
      fig.colorbar(im, ax=ax, shrink=0.8)
  suptitle(fig, f"{layer} after training: factors of the live ranks, mean over models (baseline: SVD of the "
                "dense matrix)")
  return fig


def spectra_figure(entries, layer):
  """Figure 19b: mean singular values of the recomposed matrix per label, log-y (they drop past the rank)."""
  fig, ax = plt.subplots(figsize=(4.6, 3.4), layout="constrained")
  colours = iter(f"C{i % 10}" for i in range(100))
  for label, models in entries:
    sv = np.mean([factor_measures.spectrum(*f) for f in models], axis=0)
    ax.plot(np.arange(1, len(sv) + 1), sv, color="black" if label == "baseline" else next(colours), label=label)
  ax.set_yscale("log")
  ax.set_ylim(bottom=max(ax.get_ylim()[0], ax.get_ylim()[1] * 1e-9))  # float noise past the rank stays off
  ax.set_xlabel("singular value index")
  ax.set_ylabel("singular value")
  ax.set_title(f"{layer}: singular values of\nthe recomposed matrix (mean over models)")
  ax.legend()
  return fig


def by_weight_decay(rows):
  """{suffix: rows}: one subset per weight decay when the workdirs differ in it (App. E), else all rows."""
  wds = sorted({r["weight_decay"] for r in rows}, key=grids.sort_key)
  if len(wds) == 1:
    return {"": rows}
  return {f"_wd{wd:g}": [r for r in rows if r["weight_decay"] == wd] for wd in wds}


def tables(rows):
  """The steps-to-grok table in markdown, one per weight decay when the rows differ in it; then, when they do and
  some models are decomposed, the best-test-accuracy grid of each layer group (Figure 24's numbers)."""
  subs = by_weight_decay(rows)
  out = [f"weight decay {sub[0]['weight_decay']:g}\n\n" * bool(suffix) + markdown.table(summary.summarise(sub))
         for suffix, sub in subs.items()]
  if len(subs) > 1 and grids.decomposed(rows):
    out.append(grids.grid_tables(rows))
  return "\n\n".join(out)


def figures(rows, workdirs):
  """Yields (file stem, Figure) for everything the rows support."""
  for suffix, sub in by_weight_decay(rows).items():
    groups = sorted({r["group"] for r in sub} - {"none"}, key=group_key) or ["none"]
    for g in groups:
      yield f"accuracy_{g.replace(',', '+')}{suffix}", accuracy_figure(sub, g)
    for g in groups:
      for f in sorted({summary.frac_key(r["frac"]) for r in sub}):
        has = {r["group"] for r in sub if summary.frac_key(r["frac"]) == f and r.get("stable_rank")}
        if g != "none" and {"none", g} <= has:
          for diff in (False, True):
            stem = f"stable_rank{'_diff' * diff}_{g.replace(',', '+')}_f{f * 100:g}{suffix}"
            yield stem, stable_rank_figure(sub, g, f, diff)
  if any(r["group"] != "none" for r in rows):
    vary_wd = len(by_weight_decay(rows)) > 1
    keys = {"row_key": "weight_decay", "panel_key": "group"} if vary_wd else {}
    yield "grid_test_acc", grids.grid_figure(rows, "best_test", **keys)
    yield "grid_gap", grids.grid_figure(rows, "gap", **keys)
    models = summary.by_model(grids.decomposed(rows)).values()
    if any(summary.steps_to_grok(rs)["gap1_step"] is not None for rs in models):  # else every cell says "never"
      yield "grid_gap1_steps", grids.grid_figure(rows, "gap1_step", **keys)
  for w in workdirs:
    for layer, entries in factors.read(w, rows, rank_label).items():
      stem = f"{wd.basename(w)}_{layer.replace('/', '_')}"
      yield f"factors_{stem}", factor_figure(entries, layer)
      yield f"spectra_{stem}", spectra_figure(entries, layer)


def main(argv=None):
  ap = inputs.Parser(prog="python -m dlgrok.plot", description=__doc__.splitlines()[0])
  ap.add_argument("workdirs", nargs="+", help="run directories holding config.json and metrics.jsonl")
  ap.add_argument("--out", help="output folder (default: <first workdir>/plots)")
  ap.add_argument("--pdf", action="store_true", help="also write PDF")
  ap.add_argument("--table", action="store_true", help="print a markdown table of steps-to-grok")
  ap.add_argument("--ranks", help="only these ranks of the decomposed models, as the rows label them, comma-separated "
                  "(e.g. p12.5: Figure 9's attention at rank 16 of 128); the baseline is kept")
  ap.add_argument("--compare", action="store_true", help="instead of the paper's figures: accuracy curves per "
                  "arm against the baseline (compare_accuracy.png) and a steps-to-grok table (stdout, compare.md)")
  ap.add_argument("--phase", action="store_true", help="instead of the paper's figures: rank x training-fraction "
                  "heat maps of steps to a 1 %% gap (phase_gap1.png) and final test accuracy (phase_test.png)")
  args = ap.parse_args(argv)
  rows = only_ranks(load(args.workdirs), args.ranks) if args.ranks else load(args.workdirs)
  check_plottable(rows, args.workdirs)
  out = args.out or wd.join(args.workdirs[0], "plots")
  inputs.check_output(out, "--out", directory=True)
  wd.makedirs(out)
  lab = args.compare or args.phase
  for stem, fig in lab_plots.figures(rows, args.compare, args.phase) if lab else figures(rows, args.workdirs):
    for ext in ("png", "pdf") if args.pdf else ("png",):
      path = wd.join(out, f"{stem}.{ext}")
      buffer = io.BytesIO()
      fig.savefig(buffer, format=ext)
      wd.write(path, buffer.getvalue())
      print(path)
    plt.close(fig)
  if args.compare:
    lab_plots.write_compare_table(rows, out)
  if args.table:
    print(tables(rows))


if __name__ == "__main__":
  inputs.cli(main)
