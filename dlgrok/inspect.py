"""Inspects a run's checkpoint: python -m dlgrok.inspect WORKDIR [--step N] [--model I] [--json]
[--export PATH --rank K] [--factors].

Lists steps, cohorts and models; per decomposed layer its shapes, parameter counts, singular values, stable
rank, orthogonality of U and Vt and the off-diagonal mass of S (App. C); whole-model totals and compression
ratios. --export writes model I as a dense parameter tree, every factorised layer SVD-compressed to rank K;
--factors writes <workdir>/factors.npz, from which `python -m dlgrok.plot` draws the App. C figures.
"""
import dataclasses
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging as absl_logging

from dlgrok import checkpoint, cohorts, decompose, factor_measures, factors, inputs, loop, metrics, run_config, spectral
from dlgrok import workdir as wd


# the fields of a model's metrics rows that the report lists
MODEL_FIELDS = ("model", "cohort", "group", "rank", "seed", "frac", "weight_decay", "variant", "remedy",
                "remedy_params")


@dataclasses.dataclass(frozen=True)
class Restored:
  """A run as training wrote it: its plan, and a loop.Running per cohort whose state is the checkpoint's (model
  axis first)."""
  plan: cohorts.Plan
  running: list
  data: dict  # the data arrays (loop.data_arrays)
  step: int
  steps: list  # every checkpoint step


def saved_steps(workdir):
  """The steps of the checkpoints in `workdir` (InputError where there are none), read from the directory names
  before anything is loaded."""
  d = checkpoint.directory(workdir)
  if wd.lexists(d) and not wd.isdir(d):
    raise inputs.InputError(f"{d} is a file, not the directory of checkpoints; move it away")
  steps = sorted(int(s) for s in wd.listdir(d) if s.isdigit()) if wd.isdir(d) else []
  if not steps:
    raise inputs.InputError(f"no checkpoint in {d} yet; a run saves its first at step 0")
  return steps


def load(workdir, step=None, model=None):
  """The run in `workdir` restored from its newest checkpoint (or `step`); InputError for a bad workdir, step or
  model index, before the data are loaded (the step, the model: before the models are built)."""
  inputs.check_run_dir(workdir)
  config = run_config.load(workdir)
  steps = saved_steps(workdir)
  if step is not None and step not in steps:
    raise inputs.InputError(f"--step {step}: no checkpoint at that step in {workdir}; saved steps: "
                            f"{', '.join(map(str, steps))}")
  config.devices = 0  # inspect on whatever devices this machine has
  plan = cohorts.resolve(config)
  if model is not None and not 0 <= model < plan.n_models:
    raise inputs.InputError(f"--model {model}: no such model; models are 0..{plan.n_models - 1}")
  data, running = loop.start(plan)
  ckpt = checkpoint.Checkpointer(workdir, read_only=True)
  found, saved = checkpoint.restore_into(ckpt, running, loop.gather, step)
  ckpt.close()
  running = [dataclasses.replace(r, state=s) for r, s in zip(running, saved)]
  return Restored(plan, running, data, found, ckpt.steps())


def cohort_params(run):
  """The checkpoint's parameters per cohort (model axis first)."""
  return [r.state["params"] for r in run.running]


def pick(run, index):
  """(cohort position, model position, one model's params, its ranks) for global model `index`."""
  for j, r in enumerate(run.running):
    i = index - r.cohort.first
    if 0 <= i < len(r.cohort.models):
      return (j, i, jax.tree_util.tree_map(lambda x: x[i], r.state["params"]),
              {p: int(v[i]) for p, v in r.arrays["ranks"].items()})
  raise inputs.InputError(f"no model {index}; models are 0..{run.plan.n_models - 1}")


def layer_report(params, ranks, factorisation="usv"):
  """Per factorised leaf: shapes, counts, spectrum, stable rank, orthogonality, S off-diagonal mass."""
  out = {}
  flat = jax.tree_util.tree_flatten_with_path(params, is_leaf=decompose.is_factor)[0]
  for path, leaf in flat:
    if not decompose.is_factor(leaf):
      continue
    name = decompose.path_str(path)
    u, s, vt = (np.asarray(x) for x in decompose.as_usv(leaf))
    k = ranks.get(name, s.shape[0])
    m, n = u.shape[0], vt.shape[1]
    a = factor_measures.recompose(u, s, vt, k)
    ortho_u, ortho_v = factor_measures.orthogonality(u, vt, k)
    out[name] = {"shape": [m, n], "rank": k, "U": [m, k], "S": [k, k], "Vt": [k, n],
                 "trained": decompose.factor_params(m, n, k, factorisation),
                 "inference": decompose.inference_params(m, n, k), "dense": m * n,
                 "singular_values": [float(x) for x in np.linalg.svd(a, compute_uv=False)[:k]],
                 "stable_rank": float(spectral.stable_rank(jnp.asarray(a))), "UtU_minus_I": float(ortho_u),
                 "VtVt_minus_I": float(ortho_v), "S_offdiag_mass": float(factor_measures.offdiag_mass(s, k))}
  return out


def compressed(params, ranks, k):
  """Dense tree: every factorised leaf recomposed and SVD-truncated to rank min(k, its full rank)."""
  def f(path, leaf):
    if not decompose.is_factor(leaf):
      return leaf
    a = decompose.recompose_leaf(leaf, ranks.get(decompose.path_str(path)))
    return decompose.compress(a, min(k, decompose.full_rank(a.shape)))
  return jax.tree_util.tree_map_with_path(f, params, is_leaf=decompose.is_factor)


def test_accuracy(run, j, i, dense):
  """Model i of cohort j's test accuracy with `dense` parameters, evaluated as training evaluates it (prepared
  inputs, in passes of eval_chunk examples)."""
  r = run.running[j]
  _, ok = r.fns.per_example(dense, run.data)
  return float(np.mean(np.asarray(ok)[~np.asarray(r.arrays["is_train"][i])]))


def report(workdir, step=None, model=None):
  run = load(workdir, step, model)
  out = {"workdir": workdir, "steps": run.steps, "step": run.step, "cohorts": [], "models": []}
  for k in run.plan.cohorts:
    out["cohorts"].append({"name": k.name, "models": len(k.models)})
    for i in range(len(k.models)):
      fields = metrics.model_fields(k, i)
      out["models"].append({f: fields[f] for f in MODEL_FIELDS})
  chosen = range(len(out["models"])) if model is None else [model]
  out["details"] = {}
  for index in chosen:
    j, _, params, ranks = pick(run, index)
    variant = run.plan.cohorts[j].factorisation
    _, total = decompose.count_params(params, ranks, variant)
    out["details"][index] = {"layers": layer_report(params, ranks, variant), "total": total,
                             "trained_ratio": total["trained"] / total["dense"],
                             "inference_ratio": total["inference"] / total["dense"]}
  return out, run


def print_report(out):
  print(f"{out['workdir']}: checkpoints at steps {out['steps']}; showing step {out['step']}")
  for m in out["models"]:
    print(f"  model {m['model']:3d}  cohort {m['cohort']:10s} rank {m['rank']:6s} seed {m['seed']}  frac {m['frac']:g}"
          f"  weight decay {m['weight_decay']:g}")
  for index, d in out["details"].items():
    t = d["total"]
    print(f"model {index}: trained {t['trained']}  inference {t['inference']}  dense {t['dense']}  "
          f"ratios trained/dense {d['trained_ratio']:.4f}  inference/dense {d['inference_ratio']:.4f}")
    for name, l in d["layers"].items():
      sv = ", ".join(f"{x:.3g}" for x in l["singular_values"][:5])
      print(f"  {name}: {l['shape'][0]}x{l['shape'][1]} rank {l['rank']}  trained {l['trained']}  inference "
            f"{l['inference']}  stable rank {l['stable_rank']:.4f}  |UtU-I| {l['UtU_minus_I']:.3g}  "
            f"|VtVt'-I| {l['VtVt_minus_I']:.3g}  S off-diag {l['S_offdiag_mass']:.3g}  sv [{sv}, ...]")


def export(run, index, k, path):
  """Writes model `index` SVD-compressed to rank k; returns (test accuracy before, after)."""
  j, i, params, ranks = pick(run, index)
  before = test_accuracy(run, j, i, decompose.recompose(params, ranks))
  dense = compressed(params, ranks, k)
  after = test_accuracy(run, j, i, dense)
  try:
    with ocp.StandardCheckpointer() as ckptr:
      ckptr.save(wd.absolute(path), {"params": dense}, force=True)
      ckptr.wait_until_finished()
  except OSError as e:
    raise inputs.InputError(f"--export {path}: cannot write it ({e.strerror or e})") from None
  return before, after


def main(argv=None):
  ap = inputs.Parser(prog="python -m dlgrok.inspect", description=__doc__.split("\n")[0])
  ap.add_argument("workdir")
  ap.add_argument("--step", type=int, help="checkpoint step (default: the newest)")
  ap.add_argument("--model", type=int, help="global model index (default: all)")
  ap.add_argument("--json", action="store_true", help="machine-readable output")
  ap.add_argument("--export", metavar="PATH", help="write a dense rank-K compressed parameter tree here")
  ap.add_argument("--rank", type=int, help="K for --export")
  ap.add_argument("--factors", action="store_true", help="write <workdir>/factors.npz for the App. C figures")
  a = ap.parse_args(argv)
  absl_logging.set_verbosity(absl_logging.ERROR)  # orbax's notices on opening checkpoints read-only
  if a.rank is not None and a.rank < 1:
    ap.error(f"--rank {a.rank}: must be >= 1")
  if a.export and not a.rank:
    ap.error("--export needs --rank K")
  if a.export:
    inputs.check_output(a.export, "--export", directory=True)  # orbax writes a directory there
  if a.factors and wd.isdir(a.workdir):
    inputs.check_output(wd.join(a.workdir, "factors.npz"), "--factors", directory=False)
  inputs.check_backend()
  out, run = report(a.workdir, a.step, a.model)
  if a.export:
    before, after = export(run, a.model or 0, a.rank, a.export)
    out["export"] = {"path": a.export, "rank": a.rank, "test_acc_before": before, "test_acc_after": after}
  if a.factors:
    out["factors"] = factors.write(a.workdir, run.plan, cohort_params(run), None if a.model is None else [a.model])
  if a.json:
    json.dump(out, sys.stdout, indent=1)
    print()
  else:
    print_report(out)
    if a.export:
      e = out["export"]
      print(f"exported model {a.model or 0} at rank {a.rank} to {a.export}: test accuracy "
            f"{e['test_acc_before']:.4f} before, {e['test_acc_after']:.4f} after compression")


if __name__ == "__main__":
  inputs.cli(main)
