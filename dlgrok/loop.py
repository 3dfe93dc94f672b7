"""Pure cohort functions, in the PureJaxRL manner: `make_cohort(plan, cohort, placement)` returns jitted
init, train-chunk, evaluate and epoch-permutation functions. They take the state and the per-model arrays (ranks,
weight decays, keys, splits: `model_arrays`) and the data set (the same for every model: `data_arrays`) as
arguments; nothing is read from an object, and no data set is a constant of the compiled programs. The state has a
leading model axis, sharded over the devices and padded to a multiple of their number (`Placement`). On a single
CPU device the models of a step run one after another (`model_batch`); elsewhere they are vmapped.
"""
import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from dlgrok import decompose, remedies, spectral


@dataclasses.dataclass(frozen=True)
class Placement:
  """How a cohort's model axis lies on the devices: padded with inert copies of the last model."""
  sharding: NamedSharding  # the model axis over the devices
  replicated: NamedSharding
  size: int  # real models
  pad: int  # padding models

  @staticmethod
  def of(config, size):
    n_dev = config.devices or jax.device_count()
    mesh = jax.make_mesh((n_dev,), ("models",), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=jax.devices()[:n_dev])
    return Placement(NamedSharding(mesh, P("models")), NamedSharding(mesh, P()), size, -size % n_dev)

  @property
  def devices(self):
    return self.sharding.mesh.size

  def padded(self, a):
    return jnp.concatenate([a, jnp.repeat(a[-1:], self.pad, axis=0)]) if self.pad else a

  def put(self, tree):
    """Per-model arrays (leading model axis), padded and sharded."""
    return jax.device_put(jax.tree_util.tree_map(self.padded, tree), self.sharding)


def gather(tree):
  """Host numpy copy of (possibly multi-host) sharded arrays."""
  if jax.process_count() > 1:
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.device_get(tree)


def data_arrays(plan, placement):
  """The data set on every device: x, y (and the token stream of window-sampling tasks)."""
  d = plan.data
  out = {"x": jnp.asarray(d.x), "y": jnp.asarray(d.y)}
  if d.stream is not None:
    out["stream"] = jnp.asarray(d.stream)
  return jax.device_put(out, placement.replicated)


def model_arrays(plan, cohort, placement):
  """Per-model data of a cohort: layer ranks, weight decays, remedy hyperparameters, init / data keys (from each
  seed), and each model's split: train_idx (its first n_train examples, padded to the cohort's largest n_train),
  n_train, batches per epoch, and is_train (a mask over all examples)."""
  specs, task, bs = cohort.models, plan.task, plan.config.batch_size
  n = len(plan.data.y)
  n_train = jnp.array([m.n_train for m in specs], jnp.int32)
  keys = jax.vmap(jax.random.PRNGKey)(jnp.array([m.seed for m in specs], jnp.uint32))
  init_keys, split_keys, data_keys = (jax.vmap(lambda k: jax.random.split(k, 3))(keys)[:, i] for i in range(3))
  perms = jax.vmap(lambda k: task.split(k, n))(split_keys)
  hyper = {k: jnp.array([m.remedy_params[k] for m in specs], jnp.int32 if k == "window" else jnp.float32)
           for k in (specs[0].remedy_params if specs else {})}
  return placement.put({
      "ranks": {p: jnp.array([m.layer_ranks[p] for m in specs], jnp.int32) for p in cohort.max_ranks},
      "wd": jnp.array([m.weight_decay for m in specs], jnp.float32), "hyper": hyper,
      "init_keys": init_keys, "data_keys": data_keys, "train_idx": perms[:, :max(m.n_train for m in specs)],
      "n_train": n_train, "batches": (n_train + bs - 1) // bs,
      "is_train": jax.vmap(lambda p, k: jnp.zeros(n, bool).at[p].set(jnp.arange(n) < k))(perms, n_train)})


def build(plan):
  """Every cohort of `plan` ready to run: (placements, data arrays, per-model arrays, cohort functions)."""
  places = [Placement.of(plan.config, len(k.models)) for k in plan.cohorts]
  data = data_arrays(plan, places[0])
  arrays = [model_arrays(plan, k, p) for k, p in zip(plan.cohorts, places)]
  return places, data, arrays, [cohort_fns(plan, k, p) for k, p in zip(plan.cohorts, places)]


def cohort_fns(plan, cohort, placement):
  """make_cohort's functions, made once per plan, cohort and placement: jax traces a function once for given
  shapes, so the memory estimate's traces of them are the ones training runs (a run's start-up traced each
  cohort twice)."""
  key = (id(cohort), placement)
  if key not in plan.built:
    plan.built[key] = make_cohort(plan, cohort, placement)
  return plan.built[key]


@dataclasses.dataclass
class Running:
  """One cohort as a run holds it: its entry in the plan, placement, per-model arrays, functions and state."""
  cohort: object  # cohorts.Cohort
  place: Placement
  arrays: dict
  fns: "CohortFns"
  state: dict


def start(plan):
  """(data arrays, a Running per cohort of `plan` at its initial state)."""
  places, data, arrays, fns = build(plan)
  return data, [Running(k, p, a, f, f.init(a, data)) for k, p, a, f in zip(plan.cohorts, places, arrays, fns)]


def model_batch(config, placement):
  """Models per pass of a step or evaluation: config.model_batch, or (0) 1 on a single CPU device, where a
  vmapped step of 16 or 32 models ran 8-25 % slower per model than one model's, a loop 7 % (benchmarks/), and
  all of them (vmap) elsewhere."""
  if config.get("model_batch", 0):
    return config.model_batch
  return 1 if placement.devices == 1 and jax.devices()[0].platform == "cpu" else 0


def over_models(fn, in_axes, batch, size):
  """`fn` over the leading model axis of the arguments whose in_axes is 0 (the others shared): vmapped, or
  (0 < batch < size) `batch` models at a time in a loop, which gives the same numbers to float32 rounding."""
  if not batch or batch >= size:
    return jax.vmap(fn, in_axes=in_axes)

  def looped(*args):
    def one(mapped):
      it = iter(mapped)
      return fn(*(next(it) if ax == 0 else x for x, ax in zip(args, in_axes)))
    return jax.lax.map(one, [x for x, ax in zip(args, in_axes) if ax == 0], batch_size=batch)

  return looped


@dataclasses.dataclass(frozen=True)
class CohortFns:
  init: Callable  # (arrays, data) -> state {"params", "opt", "perm"}
  chunk: Callable  # (state, arrays, data, step0, n) -> state after n more steps (state donated)
  evaluate: Callable  # (params, arrays, data) -> per-model losses, accuracies and stable ranks
  perm_at: Callable  # (arrays, step) -> the state's "perm" at `step` (what a restored checkpoint lacks)
  per_example: Callable  # (dense params of one model, data) -> (loss, correct) of every example (not jitted)


@dataclasses.dataclass(frozen=True)
class StepSpec:
  """The static part of a cohort's training step, fixed when it is traced."""
  task: object  # tasks.Task: its batch and train_kwargs methods
  plan: object  # cohorts.Plan, read by the task's batch hook
  model: object  # the flax module
  loss: Callable  # (logits, labels) -> per-example losses
  optimizer: Callable  # (weight decay, remedy hyperparameters) -> optax transformation
  batch_size: int
  factorisation: str  # configs.FACTORISATIONS


def train_step(spec, d, m, batch, n_train):
  """One model's training step. `d` is the data set; `m` the model's own slice of the state and the per-model
  arrays (params, opt, perm, train_idx, ranks, wd, hyper, key); `batch` its batch index in the epoch. The batch is
  the model's slice of its epoch permutation (the last batch of an epoch is partial and weighted out) or the
  task's own draw; masked (and frozen) factors never move. Returns (params, opt)."""
  data_key, dropout_key = jax.random.split(m["key"])
  bs = spec.batch_size
  pos = batch * bs + jnp.arange(bs)
  idx = m["train_idx"][m["perm"][jnp.minimum(pos, n_train - 1)]]
  xb, yb, w = spec.task.batch(d, idx, (pos < n_train).astype(jnp.float32), data_key, spec.plan)
  kwargs = spec.task.train_kwargs(dropout_key)

  def loss_fn(p):
    logits = spec.model.apply({"params": decompose.recompose(p, m["ranks"])}, xb, **kwargs)
    return jnp.sum(spec.loss(logits, yb) * w) / jnp.sum(w)

  grads = jax.grad(loss_fn)(m["params"])
  updates, opt = spec.optimizer(m["wd"], m["hyper"]).update(grads, m["opt"], m["params"])
  updates = decompose.mask_updates(updates, m["ranks"], spec.factorisation)
  return optax.apply_updates(m["params"], updates), opt


def make_cohort(plan, cohort, placement):
  """The cohort's functions; each takes the data arrays (data_arrays) as its argument `d`."""
  task, c = plan.task, plan.config
  size = placement.size + placement.pad
  per_pass = model_batch(c, placement)
  model = task.model(c, cohort.model_words, plan.data)
  n, bs, form = len(plan.data.y), c.batch_size, cohort.factorisation
  n_max = max(m.n_train for m in cohort.models)
  # one training fraction for all: static epoch lengths; several: each model's own, as per-model arrays
  sizes = sorted({m.n_train for m in cohort.models})
  same_frac = len(sizes) == 1
  batches = math.ceil(n_max / bs)
  recipe = remedies.recipe(c, cohort.remedy)
  loss_of = task.loss(c, "stablemax" if cohort.remedy.has("stablemax") else None)

  def optimizer(wd, hyper):
    """The task's optimiser, after the cohort's remedy transforms (grokfast, ⊥Grad) of the raw gradient."""
    txs = remedies.transforms(cohort.remedy, hyper, cohort.max_window)
    return optax.chain(*txs, task.optimizer(recipe, wd)) if txs else task.optimizer(recipe, wd)

  def init(a, d):
    """Dense init per model from its seed, then factorised from the SVD of its own initial matrices."""
    x = task.prepare(d["x"][:1])

    def one(k):
      p = model.init(k, x)["params"]
      if c.init_scale != 1.0:
        p = jax.tree_util.tree_map(lambda v: v * c.init_scale, p)
      return decompose.factorise(p, cohort.max_ranks, form)

    # lax.map, not vmap: the same numbers, XLA:CPU compiles a vmapped threefry init ~3x slower, and one SVD per
    # matrix avoids LAPACK's batched SVD (its thread-pool wait has hung XLA:CPU)
    params = jax.lax.map(one, a["init_keys"])
    hyper = jax.tree_util.tree_map(lambda v: v[0], a["hyper"])  # any values: the state's shapes do not depend on them
    opt = jax.vmap(optimizer(0.0, hyper).init)(params)
    return {"params": params, "opt": opt, "perm": epoch_perm(a, jnp.zeros_like(a["n_train"]))}

  def epoch_perm(a, epochs):
    """Each model's permutation of its n_train training examples for its epoch (padded to n_max), drawn as if
    the model trained alone: with several fractions, each model draws one permutation per fraction of the cohort
    (static sizes) and keeps its own, so its batches never depend on its cohort-mates."""
    def one(k, epoch, n_train):
      k = jax.random.fold_in(k, epoch)
      if same_frac:
        return jax.random.permutation(k, n_max)
      drawn = jnp.stack([jnp.pad(jax.random.permutation(k, s), (0, n_max - s)) for s in sizes])
      return drawn[jnp.searchsorted(jnp.array(sizes), n_train)]
    return jax.vmap(one)(a["data_keys"], epochs, a["n_train"])

  spec = StepSpec(task, plan, model, loss_of, optimizer, bs, form)

  def chunk(state, a, d, step0, steps):
    """Runs `steps` (traced) steps from global step `step0`."""
    per_model = None if same_frac else 0  # a model's batch index and n_train: shared, or its own
    step_all = over_models(functools.partial(train_step, spec), (None, 0, per_model, per_model), per_pass, size)
    # per model and step: batch sampling, augmentation and dropout draws (unused by deterministic tasks)
    noise = jax.vmap(lambda k: jax.random.split(k)[1])(a["data_keys"])

    def body(i, carry):
      params, opt, perm = carry
      step = step0 + i
      if same_frac:
        batch, n_train = step % batches, n_max
        perm = jax.lax.cond(batch == 0, lambda: epoch_perm(a, jnp.full_like(a["n_train"], step // batches)),
                            lambda: perm)
      else:
        batch, n_train = step % a["batches"], a["n_train"]
        fresh = lambda: jnp.where((batch == 0)[:, None], epoch_perm(a, step // a["batches"]), perm)
        perm = jax.lax.cond(jnp.any(batch == 0), fresh, lambda: perm)
      keys = jax.vmap(lambda k: jax.random.fold_in(k, step))(noise)
      m = {"params": params, "opt": opt, "perm": perm, "train_idx": a["train_idx"], "ranks": a["ranks"],
           "wd": a["wd"], "hyper": a["hyper"], "key": keys}
      params, opt = step_all(d, m, batch, n_train)
      return params, opt, perm

    # the epoch's permutation is carried from chunk to chunk: computing it costs ~5 s for 180 MNIST models on
    # a CPU, and a chunk-start recomputation made short chunks slow
    params, opt, perm = jax.lax.fori_loop(0, steps, body, (state["params"], state["opt"], state["perm"]))
    return {"params": params, "opt": opt, "perm": perm}

  def per_example(dense, d):
    """(loss, correct) of every example, in passes of `eval_chunk` examples (0 = one pass) to bound memory."""
    def part(i):
      logits = model.apply({"params": dense}, task.prepare(d["x"][i]))
      return loss_of(logits, d["y"][i]), task.correct(logits, d["y"][i])

    if not c.eval_chunk or c.eval_chunk >= n:
      return part(slice(None))
    idx = np.minimum(np.arange(-(-n // c.eval_chunk) * c.eval_chunk), n - 1).reshape(-1, c.eval_chunk)
    loss, ok = jax.lax.map(part, idx)
    return loss.reshape(-1)[:n], ok.reshape(-1)[:n]

  def evaluate(params, a, d):
    def one(p, ranks, is_train):
      dense = decompose.recompose(p, ranks)
      loss, ok = per_example(dense, d)
      tr, te = is_train.astype(jnp.float32), (~is_train).astype(jnp.float32)
      per_tr, per_te = 1 / jnp.sum(tr), 1 / jnp.sum(te)
      return {"train_loss": jnp.sum(loss * tr) * per_tr, "train_acc": jnp.sum(ok * tr) * per_tr,
              "test_loss": jnp.sum(loss * te) * per_te, "test_acc": jnp.sum(ok * te) * per_te,
              "stable_rank": spectral.stable_ranks(dense)}

    return over_models(one, (0, 0, 0), per_pass, size)(params, a["ranks"], a["is_train"])

  s = placement.sharding
  return CohortFns(init=jax.jit(init, out_shardings=s), chunk=jax.jit(chunk, donate_argnums=0, out_shardings=s),
                   evaluate=jax.jit(evaluate, out_shardings=s),
                   perm_at=jax.jit(lambda a, step: epoch_perm(a, step // a["batches"]), out_shardings=s),
                   per_example=per_example)
