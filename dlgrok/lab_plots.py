"""Lab figures beside the paper's, from metrics rows: python -m dlgrok.plot RUN... --compare / --phase.

--compare: an arm is what models were trained as, (group, variant, rank, remedy, remedy_params, weight_decay,
frac); the accuracy curves of every arm over the baseline's test curve (compare_accuracy.png) and a markdown table
of steps-to-grok with the speed-up against the baseline (compare.md). An arm's baseline is the arm with group
"none", remedy "none" and weight decay 0 at its training fraction.
--phase: per decomposed group, rank x training-fraction heat maps of the steps to a 1 % generalisation gap
(phase_gap1.png) and of the final test accuracy (phase_test.png), the baseline as a row of its own.
"""
import json
import textwrap
from collections import namedtuple

import matplotlib
import matplotlib.pyplot as plt  # the Agg backend and style: figstyle
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from dlgrok import configs, figstyle, markdown, summary, workdir as wd

REMEDY_NAMES = {"grokfast_ema": "grokfast EMA", "grokfast_ma": "grokfast MA", "stablemax": "StableMax",
                "orthograd": "⊥Grad", "adam_l2": "Adam + L2", "warm0": "warm-up from 0"}
PARAM_NAMES = {"window": "w", "alpha": "α", "lamb": "λ"}  # written in this order
HATCH = {"facecolor": "0.88", "edgecolor": "0.55", "hatch": "///", "lw": 0}


def fmt(v):
  return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def remedy_label(remedy, params):
  """'grokfast EMA (α 0.98, λ 2)', 'StableMax + ⊥Grad' of a configs.Remedy: the parameters follow the grokfast
  word, if any."""
  order = list(PARAM_NAMES)
  keys = sorted(params, key=lambda k: (order.index(k) if k in order else len(order), k))
  words = remedy.words
  names = [REMEDY_NAMES.get(w, w) for w in words]
  if keys:
    at = next((i for i, w in enumerate(words) if w.startswith("grokfast")), len(words) - 1)
    names[at] += " (" + ", ".join(f"{PARAM_NAMES.get(k, k)} {fmt(params[k])}" for k in keys) + ")"
  return " + ".join(names)


def rank_text(rank):
  """'100 %', 'rank 32', 'full' of a configs.Rank."""
  return f"{rank.value:g} %" if rank.kind == "p" else rank.text


def is_baseline(arm):
  return arm.group == "none" and arm.remedy == configs.NO_REMEDY and not arm.weight_decay


def arm_label(arm, with_frac=False):
  """'baseline', 'baseline, wd 1', 'all 100 % (usv)', 'StableMax + ⊥Grad', "pre-LN (grokfast's model)", ... of a
  summary.Arm (a dense model of another group is a model of its own: its name, no rank)."""
  wd = arm.weight_decay
  dense = arm.rank.kind == "full" and not arm.variant
  parts = ([] if arm.group == "none" else [figstyle.group_name(arm.group)] if dense
           else [f"{arm.group} {rank_text(arm.rank)}" + (f" ({arm.variant})" if arm.variant else "")])
  parts += [remedy_label(arm.remedy, json.loads(arm.params))] if arm.remedy != configs.NO_REMEDY else []
  parts = (parts or ["baseline"]) + ([f"wd {wd:g}"] if wd else [])
  return ", ".join(parts + ([f"{arm.frac * 100:g} % data"] if with_frac else []))


def arms(rows):
  """[(summary.Arm, models)], at each training fraction the baseline first, then by group, rank, variant, remedy."""
  out = {}
  for rs in summary.by_model(rows).values():
    out.setdefault(summary.arm_key(rs[0]), []).append(rs)
  def order(item):
    arm, models = item
    return (arm.frac, not is_baseline(arm), figstyle.group_key(arm.group), summary.rank_sort_key(models[0][0]),
            arm.variant or "", arm.remedy.label, arm.params, arm.weight_decay or 0)
  return sorted(out.items(), key=order)


def baseline_of(arm, found):
  return next((v for k, v in found if is_baseline(k) and k.frac == arm.frac), None)


def compare_rows(rows):
  """[(arm label, summary.summary_of its models + 'speedup' against its baseline)] in arms() order."""
  found = arms(rows)
  with_frac = len({k.frac for k, _ in found}) > 1
  sums = [(k, summary.summary_of(ms)) for k, ms in found]
  return [(arm_label(k, with_frac), dict(s, speedup=summary.speedup(baseline_of(k, sums), s))) for k, s in sums]


def compare_table(rows):
  """Markdown table per arm: seeds; steps to train ≥ 99 %, test ≥ 95 % and a 1 % gap (mean ± std over the seeds
  that reached it, (reached/seeds)); baseline / arm mean 1 %-gap step; final test accuracy; models diverged."""
  head = ["arm", "seeds", "train ≥ 99 %", "test ≥ 95 %", "gap ≤ 1 %", "speed-up (baseline / arm, gap ≤ 1 %)",
          "final test acc", "diverged"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for label, r in compare_rows(rows):
    cells = [label, str(r["n"])] + markdown.result_cells(r, [markdown.percent(r["final_test"])],
                                                         ("memorise_step", "test95_step", "gap1_step"))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def write_compare_table(rows, out):
  text = compare_table(rows)
  wd.write(wd.join(out, "compare.md"), text + "\n")
  print(text)


def compare_figure(rows):
  """One panel per arm: mean train (dotted) and test (solid) accuracy over seeds, +-1 std shaded, log-x, over
  the baseline's test curve (grey); panel titles count the models that diverged (their evaluations are gaps)."""
  found = arms(rows)
  with_frac = len({k.frac for k, _ in found}) > 1
  ncols = min(4, len(found))
  nrows = -(-len(found) // ncols)
  fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols + 0.4, 2.8 * nrows + 1.3), squeeze=False,
                           sharey=True, layout="constrained")
  steps = [r["step"] for r in rows if r["step"] > 0]
  for ax in axes.ravel()[len(found):]:
    ax.set_axis_off()
  for n, (ax, (key, models)) in enumerate(zip(axes.ravel(), found)):
    curves = [(baseline_of(key, found), "test_acc", "-", "0.5", 0.6)] if not is_baseline(key) else []
    colour = "black" if is_baseline(key) else f"C{n % 10}"
    curves += [(models, "train_acc", ":", colour, 1.0), (models, "test_acc", "-", colour, 1.0)]
    for ms, field, style, c, alpha in curves:
      if ms is None:
        continue
      s, mean, std = summary.mean_curve(ms, field)
      on = s > 0  # log axis
      ax.plot(s[on], mean[on], style, color=c, lw=1.3 if alpha == 1 else 1.0, alpha=alpha, zorder=1 + (alpha == 1))
      if alpha == 1:
        ax.fill_between(s[on], (mean - std)[on], (mean + std)[on], color=c, alpha=0.15, lw=0)
    k = sum(map(summary.diverged, models))
    title = f"{arm_label(key, with_frac)} ({len(models)} seed{'s' * (len(models) > 1)}"
    ax.set_title(textwrap.fill(title + (f", {k} diverged)" if k else ")"), 36), fontsize=10)
    ax.set_xscale("log")
    ax.set_xlim(min(steps, default=1), max(steps, default=10))
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if n + ncols >= len(found):
      ax.set_xlabel("optimisation step")
    if n % ncols == 0:
      ax.set_ylabel("accuracy")
  handles = [Line2D([], [], color="grey", ls=":"), Line2D([], [], color="grey"),
             Line2D([], [], color="0.5", alpha=0.6)]
  fig.legend(handles, ["train", "test", "baseline test"], loc="outside lower center", ncol=3, frameon=False)
  figstyle.suptitle(fig, "Arms compared: train (dotted) and test (solid) accuracy, mean ± std over seeds\ngrey: the "
                     "baseline's test accuracy (no remedy, weight decay 0, same training fraction)")
  return fig


Phase = namedtuple("Phase", "labels fracs values reached seeds diverged")


def phase_matrix(rows, group, measure="gap1_step"):
  """Rank x training-fraction matrix of `group`'s models: labels are its rank percents low to high, then
  'baseline' (group none, no remedy, the group's weight decay); fracs its training fractions. values[i, j]: the
  mean `measure` (one of summary.MEASURES) over the seeds that reached it, NaN where none did, or for
  'final_test' the mean final test accuracy of the models that did not diverge; reached: how many models that
  mean is over; seeds: models in the cell (0: none trained); diverged: how many of them diverged."""
  dec = [r for r in rows if r["group"] == group and r.get("pct") is not None]
  wds = {r.get("weight_decay") for r in dec}
  base = [r for r in rows if r["group"] == "none" and summary.arm_key(r).remedy == configs.NO_REMEDY
          and r.get("weight_decay") in wds]
  pcts = sorted({round(float(r["pct"]), 6) for r in dec})
  fracs = sorted({summary.frac_key(r["frac"]) for r in dec})
  shape = (len(pcts) + 1, len(fracs))
  values, (reached, seeds, diverged) = np.full(shape, np.nan), (np.zeros(shape, int) for _ in range(3))
  for i, sel in enumerate([[r for r in dec if round(float(r["pct"]), 6) == p] for p in pcts] + [base]):
    for j, f in enumerate(fracs):
      models = list(summary.by_model([r for r in sel if summary.frac_key(r["frac"]) == f]).values())
      if not models:
        continue
      s = summary.summary_of(models)
      seeds[i, j], diverged[i, j] = s["n"], s["diverged"]
      if measure == "final_test":
        values[i, j], reached[i, j] = np.nan if s["final_test"] is None else s["final_test"], s["n"] - s["diverged"]
      else:
        v = s[measure]
        values[i, j], reached[i, j] = v["mean"] if v["reached"] else np.nan, v["reached"]
  return Phase(pcts + ["baseline"], fracs, values, reached, seeds, diverged)


def phase_figure(ph, measure, what):
  """Heat map of a Phase: the rank rows (lowest at the bottom) under a separate baseline row. Steps are coloured
  by log10 (fewer = greener), accuracies in %; a cell no seed reached says 'n.w.b.' (not within budget), one
  whose models all diverged 'div.', and '(r/n)' where the number is the mean of r of n seeds."""
  steps = measure != "final_test"
  shown = np.log10(np.maximum(ph.values, 1)) if steps else 100 * ph.values
  finite = shown[np.isfinite(shown)]
  lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
  norm = matplotlib.colors.Normalize(*((lo - 0.5, hi + 0.5) if hi - lo < 0.1 else (lo, hi)) if steps else (0, 100))
  cmap = matplotlib.colormaps["RdYlGn_r" if steps else "RdYlGn"]
  npct = len(ph.labels) - 1
  fig, (top, bottom) = plt.subplots(2, 1, sharex=True, height_ratios=[1, max(npct, 1)], layout="constrained",
                                    figsize=(max(1.15 * len(ph.fracs) + 3.2, 7.0), 0.5 * npct + 3.2))
  for ax, part, origin in ((top, slice(npct, None), "upper"), (bottom, slice(0, npct), "lower")):
    im = ax.imshow(shown[part], cmap=cmap, norm=norm, aspect="auto", origin=origin)
  for (i, j), v in np.ndenumerate(ph.values):
    ax, y = (top, 0) if i == npct else (bottom, i)
    n, r = ph.seeds[i, j], ph.reached[i, j]
    if not n:
      continue
    if ph.diverged[i, j] == n or not r:
      ax.add_patch(Rectangle((j - 0.5, y - 0.5), 1, 1, **HATCH))
      ax.text(j, y, "div." if ph.diverged[i, j] == n else "n.w.b.", ha="center", va="center", fontsize=8)
      continue
    text = (markdown.num(v, 2) if steps else f"{100 * v:.1f}") + (f"\n({r}/{n})" if r < n else "")
    dark = np.dot(cmap(norm(shown[i, j]))[:3], [0.299, 0.587, 0.114]) < 0.5
    ax.text(j, y, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
  top.set_yticks([0], ["baseline"])
  bottom.set_yticks(range(npct), [f"{p:g}" for p in ph.labels[:-1]])
  bottom.set_xticks(range(len(ph.fracs)), [f"{f * 100:g}" for f in ph.fracs])
  bottom.set_xlabel("training fraction (%)")
  bottom.set_ylabel("rank (% of full rank)")
  label = "log10 steps to a 1 % gap" if steps else "final test accuracy (%)"
  fig.colorbar(im, ax=[top, bottom], label=label, shrink=0.9)
  if steps:
    figstyle.suptitle(fig, f"Steps to a 1 % generalisation gap: {what}\nmean of the seeds that reached it, greener = "
                       "fewer; (r/n): r of n did\nn.w.b.: not within budget, no seed reached it in the run's steps\n"
                       "div.: every model diverged")
  else:
    figstyle.suptitle(fig, f"Final test accuracy in %: {what}\nmean over the models that did not diverge; (r/n): r of n "
                       "did not diverge; div.: every model diverged")
  return fig


def set_key(row):
  """A row's summary.Arm without rank and training fraction."""
  return summary.arm_key(row)._replace(rank=None, frac=None)


def phase_sets(rows):
  """{file suffix: (title, group, rows)}: one set per decomposed group (and variant, remedy, weight decay where
  these differ between the group's models), each with all baseline rows; the suffix names what differs."""
  rows = [dict(r, set_key=set_key(r)) for r in rows]
  keys = sorted({r["set_key"] for r in rows if r["group"] != "none" and r.get("pct") is not None},
                key=lambda k: (figstyle.group_key(k.group), str((k.variant, k.remedy.label, k.params, k.weight_decay))))
  fields = ("group", "variant", "remedy", "params", "weight_decay")
  vary = [i for i, f in enumerate(fields) if len({getattr(k, f) for k in keys}) > 1]
  out = {}
  for k in keys:
    group, variant, remedy, wd = k.group, k.variant, k.remedy, k.weight_decay
    params = json.loads(k.params)
    words = [group.replace(",", "+"), variant, remedy.label, "".join(f"{a}{fmt(b)}" for a, b in params.items()),
             f"wd{wd or 0:g}"]
    title = ", ".join([f"{figstyle.group_name(group)} decomposed" + (f" ({variant})" if variant else "")]
                      + [remedy_label(remedy, params)] * (remedy != configs.NO_REMEDY) + [f"wd {wd:g}"] * bool(wd))
    sub = [r for r in rows if r["group"] == "none" or r["set_key"] == k]
    out["".join(f"_{words[i]}" for i in vary)] = (title, group, sub)
  return out


def figures(rows, compare=True, phase=True):
  """Yields (file stem, Figure): compare_accuracy, and phase_gap1 / phase_test per phase_sets()."""
  if compare:
    yield "compare_accuracy", compare_figure(rows)
  if phase:
    for suffix, (title, group, sub) in phase_sets(rows).items():
      yield f"phase_gap1{suffix}", phase_figure(phase_matrix(sub, group), "gap1_step", title)
      yield f"phase_test{suffix}", phase_figure(phase_matrix(sub, group, "final_test"), "final_test", title)
