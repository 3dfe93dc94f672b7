"""<workdir>/factors.npz, written by `inspect --factors` and read by `plot` for the App. C figures (16-19): keys
'm{model}/{layer}/U|S|Vt' of factorised layers, and 'm{model}/{layer}/A' of the same layers in dense models."""
import io

import jax
import numpy as np

from dlgrok import decompose, factor_measures, summary, workdir as wd


def path(workdir):
  return wd.join(workdir, "factors.npz")


def write(workdir, plan, params, models=None):
  """factors.npz of the models in `models` (global indices; None = all), from per-cohort params (model axis first)."""
  layers = {decompose.layer_name(p) for k in plan.cohorts for p in k.max_ranks}
  arrays = {}
  for cohort, ps in zip(plan.cohorts, params):
    for i in range(len(cohort.models)):
      index = cohort.first + i
      if models is not None and index not in models:
        continue
      one = jax.tree_util.tree_map(lambda a: a[i], ps)
      for p, leaf in jax.tree_util.tree_flatten_with_path(one, is_leaf=decompose.is_factor)[0]:
        layer = decompose.layer_name(decompose.path_str(p))
        if layer not in layers or not (decompose.is_factor(leaf) or np.ndim(leaf) == 2):
          continue
        parts = dict(zip(("U", "S", "Vt"), decompose.as_usv(leaf))) if decompose.is_factor(leaf) else {"A": leaf}
        arrays.update({f"m{index}/{layer}/{k}": np.asarray(v) for k, v in parts.items()})
  buffer = io.BytesIO()
  np.savez_compressed(buffer, **arrays)
  wd.write(path(workdir), buffer.getvalue())
  return path(workdir)


def read(workdir, rows, label):
  """{layer: [(label(group, rank), [(U, S, Vt, k), ...]), ...]} of <workdir>/factors.npz, baselines first (their
  dense matrices as their SVD, k None); dense layers of decomposed models are left out."""
  if not wd.exists(path(workdir)):
    return {}
  data = np.load(io.BytesIO(wd.read_bytes(path(workdir))))
  info = {r["model"]: r for r in rows if r["run"] == workdir}
  found = {}
  for key in data.files:
    model, rest = key.split("/", 1)
    layer, part = rest.rsplit("/", 1)
    found.setdefault((int(model[1:]), layer), {})[part] = data[key]
  out = {}
  for (model, layer), parts in sorted(found.items()):
    row = info[model]
    if "A" in parts and row["group"] != "none":
      continue
    if "A" in parts:
      f = factor_measures.dense_factors(parts["A"]) + (None,)
    else:
      f = (parts["U"], parts["S"], parts["Vt"], row["layer_ranks"].get(layer))
    key = (row["group"] != "none", summary.rank_sort_key(row), row["group"], row["rank"])
    out.setdefault(layer, {}).setdefault(key, []).append(f)
  return {layer: [(label(k[2], k[3]), fs) for k, fs in sorted(labels.items())] for layer, labels in out.items()}
