"""Figures 24 and 29-32 and their numbers: one value per layer group (or weight decay) x rank percent, the
baseline in the first column, one panel per training fraction (or layer group)."""
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from dlgrok import summary
from dlgrok.figstyle import group_key, group_name, suptitle


def decomposed(rows):
  """The rows of decomposed models at a rank percent: the cells of the grids."""
  return [r for r in rows if r["group"] != "none" and r.get("pct") is not None]


def panel_title(p, panel_key):
  return f"{p * 100:g} % training data" if panel_key == "frac" else f"decomposed: {group_name(str(p))}"


def grid_cells(rows, value="best_test", row_key="group", panel_key="frac"):
  """[(panel, row values, rank percents, vals, spread, diverged, n, found)] behind grid_figure and grid_tables:
  per panel, arrays (rows x (1 + ranks)) of summary.cell_stats of `value`; column 0 is the baseline."""
  dec = decomposed(rows)
  panels = sorted({r[panel_key] for r in dec}, key=group_key if panel_key == "group" else sort_key)
  out = []
  for p in panels:
    mine = [r for r in rows if r[panel_key] == p or (r["group"] == "none" and panel_key == "group")]
    ys = sorted({r[row_key] for r in dec if r[panel_key] == p}, key=group_key if row_key == "group" else sort_key)
    pcts = sorted({round(r["pct"], 1) for r in dec if r[panel_key] == p})
    stats = np.full((5, len(ys), len(pcts) + 1), np.nan)  # mean, spread, diverged, n, found
    for i, y in enumerate(ys):
      same = [r for r in mine if r["group"] == "none" and (row_key == "group" or r[row_key] == y)]
      stats[:, i, 0] = summary.cell_stats(same, value)
      for j, pct in enumerate(pcts):
        stats[:, i, j + 1] = summary.cell_stats(
            [r for r in dec if r[panel_key] == p and r[row_key] == y and round(r["pct"], 1) == pct], value)
    out.append((p, ys, pcts, *stats))
  return out


TITLES = {"best_test": "Best test accuracy in %, mean over seeds",
          "gap": "Generalisation gap (final train - test accuracy) in %, mean over seeds",
          "gap1_step": "Steps to a 1 % gap, mean over seeds; k/n: only k of n reached it by the run's end, the others "
                       "count as that end (the mean is a lower bound)"}


def change(value, vals):
  """Each cell against its row's baseline (column 0), positive where better: accuracy and gap in points, steps
  as log10 of the ratio; NaN where the baseline has no value (no colour reference)."""
  if value == "best_test":
    return vals - vals[:, :1]
  if value == "gap":
    return vals[:, :1] - vals
  return np.log10(vals[:, :1] / vals)


def cell_text(value, v, div, n, found):
  if value != "gap1_step":
    return f"{100 * v:.1f}{'*' * bool(div)}"
  if found < n - div:
    return f"≥{v:.0f}{'*' * bool(div)}\n{found:.0f}/{n - div:.0f}"
  return f"{v:.0f}{'*' * bool(div)}"


def grid_figure(rows, value="best_test", row_key="group", panel_key="frac"):
  """Figures 24, 29-32: mean best test accuracy (value='best_test') or final train - test gap ('gap') in %, or
  the steps to a 1 % gap ('gap1_step': the mean, a lower bound "≥" where some models never reach it),
  by `row_key` x rank percent, one panel per `panel_key`; the first column is the baseline, colour is the change
  against it (blue better, red worse). Diverged models are left out: a cell where all diverged is grey, hatched
  and says "div.", one where some did gets a "*"; one where no model reached a 1 % gap is hatched: "never"."""
  dec = decomposed(rows)
  cells = grid_cells(rows, value, row_key, panel_key)
  ncell = len({round(r["pct"], 1) for r in dec}) + 1
  ncols = 2 if len(cells) == 4 else min(len(cells), 3)  # Figure 24's four panels as 2 x 2, else rows of 3
  nrows = -(-len(cells) // ncols)
  fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * (0.62 * ncell + 0.5) + 2.6,
                                                  nrows * (0.42 * len({r[row_key] for r in dec}) + 2.0) + 0.3),
                           squeeze=False, layout="constrained")
  for ax in axes.flat[len(cells):]:
    fig.delaxes(ax)
  steps = value == "gap1_step"
  first, diverged, nevers = None, set(), False
  for k, (p, ys, pcts, vals, _, div, n, found) in enumerate(cells):
    ax, left = axes.flat[k], k % ncols == 0
    better = change(value, vals)
    # at least 1 point (a factor 2 in steps), so float noise stays white
    lim = max(np.nanmax(np.abs(better), initial=0), np.log10(2) if steps else 0.01)
    ax.imshow(better, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for (i, j), v in np.ndenumerate(vals):
      if div[i, j]:
        diverged.add((int(div[i, j]), int(n[i, j])))
      never = bool(steps and n[i, j] > div[i, j] and not found[i, j])
      nevers |= never
      if n[i, j] and (div[i, j] == n[i, j] or never):
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.85", edgecolor="0.55", hatch="///", lw=0))
        ax.text(j, i, "never" if never else "div.", ha="center", va="center", fontsize=8, color="black")
      elif not np.isnan(v):
        ax.text(j, i, cell_text(value, v, div[i, j], n[i, j], found[i, j]), ha="center", va="center",
                fontsize=7 if steps else 8, color="white" if abs(better[i, j]) > 0.6 * lim else "black")
    if steps:  # the baseline column framed
      ax.add_patch(Rectangle((-0.5, -0.5), 1, len(ys), fill=False, edgecolor="black", lw=1.5, clip_on=False))
    ax.set_xticks(range(len(pcts) + 1), ["base"] + [f"{q:g}" for q in pcts])
    labels = [group_name(y) if row_key == "group" else str(y) for y in ys]
    first = ys if first is None else first
    ax.set_yticks(range(len(ys)), labels if left or ys != first else [])  # repeated labels left out
    ax.set_xlabel("rank (% of full rank)")
    if left:
      ax.set_ylabel("decomposed layers" if row_key == "group" else row_key.replace("_", " "))
    ax.set_title(panel_title(p, panel_key))
  some = sorted((k, m) for k, m in diverged if k < m)
  notes = [f"* {' or '.join(f'{k} of {m}' for k, m in some)} diverged, left out"] * bool(some)
  notes += ["div.: every model diverged"] * any(k == m for k, m in diverged)
  notes += ["never: no seed reached it"] * nevers
  suptitle(fig, "\n".join([f"{TITLES[value]}; blue better, red worse than the baseline"] + notes))
  return fig


def grid_tables(rows, value="best_test", row_key="weight_decay", panel_key="group"):
  """grid_figure's numbers as markdown, one table per panel: the mean in % over the models that did not diverge
  ± their spread (best - worst), '*' where some diverged, 'div.' where all did; a last row gives each column's
  trained / inference parameters in % of the dense model's (from the metrics rows)."""
  what = "Best test accuracy" if value == "best_test" else "Final train - test gap"
  dec, tables = decomposed(rows), []
  for p, ys, pcts, vals, spread, div, n, _ in grid_cells(rows, value, row_key, panel_key):
    counts = "/".join(str(int(k)) for k in sorted(set(n[~np.isnan(n)].ravel())))
    head = [row_key.replace("_", " "), "baseline"] + [f"{q:g} %" for q in pcts]
    lines = [f"{what} in %, {panel_title(p, panel_key)}: mean ± spread over {counts} seeds", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, y in enumerate(ys):
      cells = []
      for j in range(len(pcts) + 1):
        if n[i, j] and div[i, j] == n[i, j]:
          cells.append("div.")
        else:
          cells.append("–" if np.isnan(vals[i, j]) else
                       f"{100 * vals[i, j]:.2f} ± {100 * spread[i, j]:.2f}" + "*" * bool(div[i, j]))
      lines.append("| " + " | ".join([f"{y:g}" if isinstance(y, (int, float)) else str(y)] + cells) + " |")
    sizes = ["100 / 100"]
    for q in pcts:
      r = next((r for r in dec if r[panel_key] == p and round(r["pct"], 1) == q and r.get("trained_params")), None)
      sizes.append(f"{100 * r['trained_params'] / r['dense_params']:.1f} / "
                   f"{100 * r['inference_params'] / r['dense_params']:.2f}" if r else "–")
    lines.append("| " + " | ".join(["trained / inference params, %"] + sizes) + " |")
    tables.append("\n".join(lines))
  return "\n\n".join(tables)


def sort_key(v):
  return (0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v))
