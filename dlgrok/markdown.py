"""Markdown tables of steps-to-grok summaries (summary.summarise) and the number formats figures share."""
from dlgrok import summary as summary_lib
from dlgrok.summary import MEASURES


def num(x, digits):
  """`digits` significant digits, written out below 1e6 ('1030', not '1.03e+03'), else as '1.2e6'."""
  if 10**digits <= abs(x) < 1e6:
    return f"{float(f'{x:.{digits}g}'):.0f}"
  return f"{x:.{digits}g}".replace("e+0", "e").replace("e+", "e")


def measure_text(v, n):
  """'mean ± std (reached/n)' of a summary measure, or 'never (0/n)'."""
  reached = f"({v['reached']}/{n})"
  return f"{num(v['mean'], 3)} ± {num(v['std'], 2)} {reached}" if v["reached"] else f"never {reached}"


def percent(x):
  return "–" if x is None else f"{100 * x:.2f} %"


def speedup_text(row):
  """A summary row's speed-up (baseline / row, gap <= 1 %) as '12.34×', or '–' where it has none."""
  return f"{row['speedup']:.2f}×" if row["speedup"] else "–"


def diverged_text(row):
  return f"{row['diverged']}/{row['n']} diverged" if row["diverged"] else "none"


def result_cells(row, accuracies, measures=MEASURES):
  """The steps-to-grok cells of `measures`, the speed-up, the accuracy cells and the diverged count of a summary
  row; every cell but the count says 'diverged' where all its models did."""
  if row["diverged"] == row["n"]:
    return ["diverged"] * (len(measures) + 1 + len(accuracies)) + [diverged_text(row)]
  return [measure_text(row[m], row["n"]) for m in measures] + [speedup_text(row)] + accuracies + [diverged_text(row)]


def table(summary):
  """Markdown table of steps-to-grok, mean +- std (ddof 0) over the seeds that reached it (reached / seeds), the
  seed-mean final and best accuracies and how many models diverged (a cell where all did says 'diverged')."""
  head = ["frac", "group", "rank", "seeds", "train ≥ 99 %", "test ≥ 95 %", "test ≥ 99 %", "gap ≤ 1 %",
          "speed-up (gap ≤ 1 %)", "final train / test acc", "best test acc", "diverged"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in summary:
    cells = [f"{r['frac'] * 100:g} %", r["group"], r["rank"], str(r["n"])]
    cells += result_cells(r, [f"{percent(r['final_train'])} / {percent(r['final_test'])}", percent(r["best_test"])])
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def group_tables(summary, order=None):
  """One markdown table per layer group (in the order of the key `order`) and training fraction (the paper's
  panels): the baseline, then the ranks low to high, with trained / inference parameters, steps-to-grok (table's
  form), the final test accuracy and how many models diverged (table's form)."""
  head = ["rank", "trained / inference params", "train ≥ 99 %", "test ≥ 95 %", "test ≥ 99 %", "gap ≤ 1 %",
          "speed-up (gap ≤ 1 %)", "final test acc", "diverged"]
  out = []
  for frac in sorted({r["frac"] for r in summary}):
    base = [r for r in summary if r["frac"] == frac and r["group"] == "none"]
    for group in sorted({r["group"] for r in summary if r["frac"] == frac and r["group"] != "none"}, key=order):
      lines = [f"{group}, {frac * 100:g} % training data", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
      for r in base + [r for r in summary if r["frac"] == frac and r["group"] == group]:
        trained, inference = r["params"]
        cells = ["baseline" if r["group"] == "none" else r["rank"],
                 f"{trained:,} / {inference:,}" if trained else "–"]
        cells += result_cells(r, [percent(r["final_test"])])
        lines.append("| " + " | ".join(cells) + " |")
      out.append("\n".join(lines))
  return "\n\n".join(out)


def seed_table(rows, order=None):
  """One line per model (group in the order of the key `order`, fraction, rank low to high, seed): its first
  evaluated step at each steps-to-grok measure ('never'), its final train / test accuracy and its largest
  train - test gap; a model whose evaluations diverged says so."""
  head = ["frac", "group", "rank", "seed", "train ≥ 99 %", "test ≥ 95 %", "test ≥ 99 %", "gap ≤ 1 %",
          "final train / test acc", "largest gap"]
  models = sorted(summary_lib.by_model(rows).values(), key=lambda rs: (
      rs[0]["frac"], (order or str)(rs[0]["group"]), summary_lib.rank_sort_key(rs[0]), rs[0]["seed"]))
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for rs in models:
    r, last = rs[0], rs[-1]
    cells = [f"{r['frac'] * 100:g} %", r["group"], r["rank"], str(r["seed"])]
    if summary_lib.diverged(rs):
      cells += ["diverged"] * (len(MEASURES) + 2)
    else:
      steps = summary_lib.steps_to_grok(rs)
      gap = max(summary_lib.value(x, "train_acc") - summary_lib.value(x, "test_acc") for x in rs)
      cells += ["never" if steps[m] is None else str(steps[m]) for m in MEASURES]
      cells += [f"{percent(last['train_acc'])} / {percent(last['test_acc'])}", f"{gap:.3f}"]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)
