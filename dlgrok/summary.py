"""Summaries of metrics rows (App. A.2): steps-to-grok per model, cells and arms of models, their means, speed-ups,
mean curves and stable-rank matrices. `defaults` fills the fields older rows lack.
"""
import json
import math
import typing
import warnings

import numpy as np

from dlgrok import configs

MEASURES = ("memorise_step", "test95_step", "test99_step", "gap1_step")
EPS = 1e-6  # accuracies are count / n in float32: 0.99 may be stored as 0.98999995


def model_key(row):
  """A model's identity across workdirs: (run, model index)."""
  return row.get("run"), row["model"]


def by_model(rows):
  """{model key: its rows sorted by step}."""
  models = {}
  for r in rows:
    models.setdefault(model_key(r), []).append(r)
  return {k: sorted(v, key=lambda r: r["step"]) for k, v in models.items()}


def _first(rows, cond):
  for r in rows:
    if cond(r):
      return r["step"]
  return None


def value(row, field):
  """row[field] as a float, or None where the evaluation diverged (flagged, null or NaN)."""
  v = row.get(field)
  if row.get("diverged") or v is None or not math.isfinite(v):
    return None
  return float(v)


def diverged(rows):
  """Whether a model (its rows) diverged at any evaluated step."""
  return any(value(r, "test_acc") is None for r in rows)


def steps_to_grok(rows, memorise=0.99, gap=0.01):
  """First evaluated step of one model with train >= 99 %, test >= 95 %, test >= 99 %, and train >= 99 %
  with train - test <= 1 % (the paper's "1 % generalisation gap"); None where never reached. Diverged
  evaluations never count."""
  rows = sorted(rows, key=lambda r: r["step"])
  at_least = lambda field, x: lambda r: value(r, field) is not None and value(r, field) >= x - EPS
  memorised = at_least("train_acc", memorise)
  return {
      "memorise_step": _first(rows, memorised),
      "test95_step": _first(rows, at_least("test_acc", 0.95)),
      "test99_step": _first(rows, at_least("test_acc", 0.99)),
      "gap1_step": _first(rows, lambda r: memorised(r) and value(r, "test_acc") is not None
                          and value(r, "train_acc") - value(r, "test_acc") <= gap + EPS),
  }


def frac_key(frac):
  return round(float(frac), 6)


def rank_sort_key(row):
  """Orders ranks low to high by the row's percent of full rank (None only for a dense model: last)."""
  return math.inf if row.get("pct") is None else float(row["pct"])


def cells(rows):
  """{(group, rank, frac): [model rows, ...]} over all models in `rows`."""
  out = {}
  for rs in by_model(rows).values():
    r = rs[0]
    out.setdefault((r["group"], r["rank"], frac_key(r["frac"])), []).append(rs)
  return out


class Arm(typing.NamedTuple):
  """What a model was trained as (arm_key)."""
  group: str
  variant: str | None  # the row's factorisation; None for a dense model
  rank: configs.Rank
  remedy: configs.Remedy
  params: str  # remedy_params as JSON
  weight_decay: float | None
  frac: float  # frac_key of the training fraction


def arm_key(row):
  """The Arm of a row."""
  r = row
  return Arm(r["group"], r["variant"], configs.Rank.from_label(r["rank"]), configs.Remedy.from_label(r["remedy"]),
             json.dumps(r["remedy_params"], sort_keys=True), r.get("weight_decay"), frac_key(r["frac"]))


def accuracies(models):
  """Means over the models that did not diverge of the train and test accuracy at the last evaluated step and
  of the best test accuracy (None where every model diverged)."""
  mean = lambda xs: float(np.mean(xs)) if xs else None
  kept = [rs for rs in models if not diverged(rs)]
  last = [max(rs, key=lambda r: r["step"]) for rs in kept]
  return {"final_train": mean([value(r, "train_acc") for r in last]),
          "final_test": mean([value(r, "test_acc") for r in last]),
          "best_test": mean([max(value(r, "test_acc") for r in rs) for rs in kept])}


def summary_of(models):
  """Steps-to-grok of one list of models (a cell, an arm): per measure mean, std and how many models reached
  it (a model that diverged counts as not reaching any), `n`, `diverged` (models that diverged at any step) and
  the accuracies() of the others."""
  res = [dict.fromkeys(MEASURES) if diverged(m) else steps_to_grok(m) for m in models]
  row = {"n": len(res), "diverged": sum(map(diverged, models))}
  for m in MEASURES:
    vals = [r[m] for r in res if r[m] is not None]
    row[m] = {"mean": float(np.mean(vals)) if vals else None, "std": float(np.std(vals)) if vals else None,
              "reached": len(vals)}
  row.update(accuracies(models))
  return row


def speedup(base, row):
  """base mean gap1_step / row mean gap1_step, given only when every model of both that did not diverge
  reached it (a seed that never reaches it has no finite step to average); diverged models are left out."""
  full = lambda x: x["n"] > x["diverged"] and x["gap1_step"]["reached"] == x["n"] - x["diverged"]
  if base is None or not (full(base) and full(row)) or not row["gap1_step"]["mean"]:
    return None
  return base["gap1_step"]["mean"] / row["gap1_step"]["mean"]


def summarise(rows):
  """summary_of() per (group, rank, frac), plus `speedup` against the baseline at the same fraction (App. A.2's
  61.67x)."""
  out = []
  for (group, rank, frac), models in cells(rows).items():
    first = models[0][0]
    row = {"group": group, "rank": rank, "frac": frac, "pct": first.get("pct"),
           "params": (first.get("trained_params"), first.get("inference_params"))}
    row.update(summary_of(models))
    out.append(row)
  base = {r["frac"]: r for r in out if r["group"] == "none"}
  for r in out:
    r["speedup"] = speedup(base.get(r["frac"]), r)
  out.sort(key=lambda r: (r["frac"], r["group"] != "none", r["group"], rank_sort_key(r)))
  return out


def mean_curve(models, field):
  """(steps, mean, std) of `field` over models at the steps every model evaluated; diverged evaluations and NaN
  are left out (NaN where every model diverged)."""
  steps = sorted(set.intersection(*[{r["step"] for r in rs} for rs in models]))
  keep = set(steps)
  vals = np.array([[value(r, field) for r in rs if r["step"] in keep] for rs in models], dtype=float)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN steps
    return np.array(steps), np.nanmean(vals, axis=0), np.nanstd(vals, axis=0)


def layer_order(names):
  """Layers in model order: embeddings, then the blocks, then the output layer."""
  def key(n):
    return (0 if "emb" in n else 2 if n in ("out", "head", "lm_head", "pre_logits") else 1, n)
  return sorted(names, key=key)


def stable_rank_matrix(models, layers=None):
  """(layers, steps, mean stable rank of shape (layers, steps)) over models, at the steps all evaluated."""
  layers = layers or layer_order({k for rs in models for r in rs for k in r.get("stable_rank", {})})
  steps = sorted(set.intersection(*[{r["step"] for r in rs} for rs in models]))
  keep = set(steps)
  vals = np.array([[[r["stable_rank"].get(l, np.nan) for r in rs if r["step"] in keep] for l in layers]
                   for rs in models], dtype=float)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # a layer no model measured at a step: NaN
    return layers, np.array(steps), np.nanmean(vals, axis=0)


def align(steps_a, a, steps_b, b):
  """Columns of a and b (..., steps) at their common steps."""
  common = np.intersect1d(steps_a, steps_b)
  return common, a[..., np.searchsorted(steps_a, common)], b[..., np.searchsorted(steps_b, common)]


def distance(a, b):
  """Euclidean distance over layers (axis 0) between two stable-rank matrices, per step."""
  return np.sqrt(np.nansum((np.asarray(a) - np.asarray(b)) ** 2, axis=0))


def final_measures(models):
  """Per model: best test accuracy over the evaluations that did not diverge, the final generalisation gap
  (train - test; None when the last evaluation diverged), the first step with a 1 % gap (steps_to_grok's; None
  when never reached), the last evaluated step and whether the model diverged at any step."""
  out = []
  for rs in models:
    tests = [v for v in (value(r, "test_acc") for r in rs) if v is not None]
    train, test = value(rs[-1], "train_acc"), value(rs[-1], "test_acc")
    out.append({"best_test": max(tests) if tests else None, "diverged": diverged(rs),
                "gap": None if train is None or test is None else train - test,
                "gap1_step": steps_to_grok(rs)["gap1_step"], "last_step": rs[-1]["step"]})
  return out


def cell_stats(rows, value):
  """(mean and spread (best - worst) of final_measures() `value` over the models in `rows` that did not diverge,
  NaN when none; how many diverged; how many models; how many of them have a value). For "gap1_step" a model
  that never reached a 1 % gap counts with its last step, so that the mean is a lower bound where not all did."""
  measures = final_measures(list(by_model(rows).values()))
  kept = [m for m in measures if not m["diverged"]]
  found = sum(m[value] is not None for m in kept)
  if value == "gap1_step":
    kept = [{**m, value: m["last_step"]} if m[value] is None else m for m in kept]
  vals = [m[value] for m in kept if m[value] is not None]
  mean, spread = (float(np.mean(vals)), float(np.ptp(vals))) if vals else (math.nan, math.nan)
  return mean, spread, sum(m["diverged"] for m in measures), len(measures), found

