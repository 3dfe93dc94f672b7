"""Spectral measures (App. C, D) and steps-to-grok (App. A.2) from parameters and metrics rows.

`stable_rank` / `stable_ranks` run on device inside the training loop; the rest is numpy on rows of
metrics.jsonl or on U, S, Vt arrays after training.
"""
import json
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from dlgrok import decompose

MEASURES = ("memorise_step", "test95_step", "test99_step", "gap1_step")
EPS = 1e-6  # accuracies are count / n in float32: 0.99 may be stored as 0.98999995


SQUARINGS = 20  # top eigenvalue from G^(2^20): relative error <= ~1 / (e 2^20) per eigenvalue near the top


def top_eigenvalue(g):
  """Largest eigenvalue of symmetric PSD matrices g (..., n, n) by repeated squaring, matmuls only: with P the
  trace-normalised G^(2^k), tr(P G) = sum l^(2^k+1) / sum l^(2^k) -> l_max. No LAPACK (a batched SVD hangs
  XLA:CPU's thread pool and is slow on GPUs); exactly equal top eigenvalues cost no accuracy."""
  mm = lambda a, b: jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)
  trace = lambda m: jnp.trace(m, axis1=-2, axis2=-1)[..., None, None]
  safe = lambda t: jnp.where(t > 0, t, 1.0)
  p = g / safe(trace(g))
  for _ in range(SQUARINGS):
    p = mm(p, p)
    p = p / safe(trace(p))
  return jnp.sum(p * g, axis=(-2, -1))  # tr(P G), P and G symmetric


def stable_rank(a):
  """Normalised stable rank ||A||_F^2 / ||A||_2^2 / min(m, n) of the last two axes (0 for a zero matrix);
  ||A||_2^2 is the top eigenvalue of the smaller Gram matrix."""
  a = jnp.asarray(a, jnp.promote_types(a.dtype, jnp.float32))
  at = jnp.swapaxes(a, -1, -2)
  g = jnp.matmul(at, a, precision=jax.lax.Precision.HIGHEST) if a.shape[-1] <= a.shape[-2] else \
      jnp.matmul(a, at, precision=jax.lax.Precision.HIGHEST)
  top = top_eigenvalue(g)
  sr = jnp.sum(a * a, axis=(-2, -1)) / jnp.where(top > 0, top, 1.0) / min(a.shape[-2:])
  return jnp.where(top > 0, sr, 0.0)


def stable_ranks(params, batch_dims=0):
  """{layer name: stable rank} for every leaf with 2 + batch_dims axes of a dense (recomposed) tree.

  Layers are named by decompose.layer_name ('tok_emb/embedding' -> 'tok_emb'; pass the tree below any 'params'
  collection); with batch_dims=1 the leaves carry a leading model axis and values have shape (M,).
  """
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    if jnp.ndim(leaf) == 2 + batch_dims:
      out[decompose.layer_name(decompose.path_str(path))] = stable_rank(leaf)
  return out


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
  """Orders ranks low to high: by percent when known, else by the number in the token ('r32' -> 32)."""
  if row.get("pct") is not None:
    return float(row["pct"])
  try:
    return float(row["rank"].lstrip("rp"))
  except ValueError:
    return math.inf


def cells(rows):
  """{(group, rank, frac): [model rows, ...]} over all models in `rows`."""
  out = {}
  for rs in by_model(rows).values():
    r = rs[0]
    out.setdefault((r["group"], r["rank"], frac_key(r["frac"])), []).append(rs)
  return out


def arm_key(r):
  """(group, variant, rank, remedy, remedy_params as JSON, weight_decay, frac): what a model was trained as."""
  return (r["group"], r["variant"], r["rank"], r["remedy"], json.dumps(r["remedy_params"], sort_keys=True),
          r.get("weight_decay"), frac_key(r["frac"]))


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
    row = {"group": group, "rank": rank, "frac": frac, "pct": models[0][0].get("pct")}
    row.update(summary_of(models))
    out.append(row)
  base = {r["frac"]: r for r in out if r["group"] == "none"}
  for r in out:
    r["speedup"] = speedup(base.get(r["frac"]), r)
  out.sort(key=lambda r: (r["frac"], r["group"] != "none", r["group"], rank_sort_key(r)))
  return out


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


def diverged_text(row):
  return f"{row['diverged']}/{row['n']} diverged" if row["diverged"] else "none"


def table(summary):
  """Markdown table of steps-to-grok, mean +- std (ddof 0) over the seeds that reached it (reached / seeds), the
  seed-mean final and best accuracies and how many models diverged (a cell where all did says 'diverged')."""
  head = ["frac", "group", "rank", "seeds", "train ≥ 99 %", "test ≥ 95 %", "test ≥ 99 %", "gap ≤ 1 %",
          "speed-up (gap ≤ 1 %)", "final train / test acc", "best test acc", "diverged"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in summary:
    cells = [f"{r['frac'] * 100:g} %", r["group"], r["rank"], str(r["n"])]
    if r["diverged"] == r["n"]:
      cells += ["diverged"] * 7
    else:
      cells += [measure_text(r[m], r["n"]) for m in MEASURES]
      cells.append(f"{r['speedup']:.2f}×" if r["speedup"] else "–")
      cells += [f"{percent(r['final_train'])} / {percent(r['final_test'])}", percent(r["best_test"])]
    cells.append(diverged_text(r))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


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
  (train - test; None when the last evaluation diverged) and whether the model diverged at any step."""
  out = []
  for rs in models:
    tests = [v for v in (value(r, "test_acc") for r in rs) if v is not None]
    train, test = value(rs[-1], "train_acc"), value(rs[-1], "test_acc")
    out.append({"best_test": max(tests) if tests else None, "diverged": diverged(rs),
                "gap": None if train is None or test is None else train - test})
  return out


def cell_stats(rows, value):
  """(mean and spread (best - worst) of final_measures() `value` over the models in `rows` that did not diverge,
  NaN when none; how many diverged; how many models)."""
  measures = final_measures(list(by_model(rows).values()))
  vals = [m[value] for m in measures if not m["diverged"] and m[value] is not None]
  mean, spread = (float(np.mean(vals)), float(np.ptp(vals))) if vals else (math.nan, math.nan)
  return mean, spread, sum(m["diverged"] for m in measures), len(measures)


def live(u, s, vt, k=None):
  """The first k ranks of U (m, r), S (r, r), Vt (r, n): the only entries a rank-k model uses."""
  k = s.shape[-1] if k is None else int(k)
  return np.asarray(u)[:, :k], np.asarray(s)[:k, :k], np.asarray(vt)[:k]


def recompose(u, s, vt, k=None):
  u, s, vt = live(u, s, vt, k)
  return u @ s @ vt


def dense_factors(a):
  """U, diag(s), Vt of a dense matrix's reduced SVD: the 'Base' column of App. C."""
  u, s, vt = np.linalg.svd(np.asarray(a, dtype=np.float64), full_matrices=False)
  return u, np.diag(s), vt


def grams(u, s, vt, k=None):
  """U^T U and Vt Vt^T (k x k; identity when orthonormal; the paper's Figures 16-17) and |S|."""
  u, s, vt = live(u, s, vt, k)
  return u.T @ u, vt @ vt.T, np.abs(s)


def orthogonality(u, vt, k=None):
  """(||U^T U - I||_F, ||Vt Vt^T - I||_F) over the live ranks."""
  k = u.shape[-1] if k is None else int(k)
  u, vt = np.asarray(u)[:, :k], np.asarray(vt)[:k]
  eye = np.eye(k)
  return float(np.linalg.norm(u.T @ u - eye)), float(np.linalg.norm(vt @ vt.T - eye))


def offdiag_mass(s, k=None):
  """||offdiag(S)||_F / ||S||_F over the live k x k block (0 for a diagonal S)."""
  k = s.shape[-1] if k is None else int(k)
  s = np.asarray(s)[:k, :k]
  total = np.linalg.norm(s)
  return float(np.linalg.norm(s - np.diag(np.diag(s))) / total) if total > 0 else 0.0


def spectrum(u, s, vt, k=None):
  """Singular values of the recomposed matrix U_k S_k Vt_k (zero beyond the trained rank, Figure 19)."""
  return np.linalg.svd(recompose(u, s, vt, k), compute_uv=False)
