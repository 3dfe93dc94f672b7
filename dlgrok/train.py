"""Cohorts of models (see cohorts.py) trained together: vmapped over models, looped on device between evaluation
points. Seeds, ranks (as rank masks) and data splits are per-model data; Python runs once per chunk of steps.
"""
import functools
import json
import math
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from dlgrok import analysis, checkpoint, cohorts, configs, decompose, memory, metrics, signals, tasks
from dlgrok import progress as progress_lib

IGNORED_ON_RESUME = ("progress_seconds", "checkpoint_minutes")  # may change between a run and its resumption


class Interrupted(Exception):
  """SIGTERM/SIGINT (or a preemption notice) arrived; the state at `step` is in a checkpoint (step None: it
  arrived during start-up, before any training)."""

  def __init__(self, signal_name, step=None):
    super().__init__(f"{signal_name} at step {step}" if step is not None else f"{signal_name} during start-up")
    self.signal_name, self.step = signal_name, step


def eval_steps(steps, points, spacing="log"):
  """0, ~`points` log-spaced steps in [1, steps] (or `points` equal intervals), and the last step."""
  if spacing == "linear":
    return sorted({int(s) for s in np.round(np.linspace(0, steps, points + 1))})
  logs = np.round(np.logspace(0, math.log10(max(steps, 1)), points)).astype(int)
  return sorted({0, steps, *(int(s) for s in logs if s <= steps)})


PER_MODEL = ("ranks", "wd", "init_keys", "data_keys", "train_idx", "is_train")  # arrays with a model axis


class CohortRunner:
  """Jitted init / train-chunk / evaluate functions for one cohort; the state has a leading model axis,
  sharded over the devices (padded to a multiple of their number)."""

  def __init__(self, config, task, cohort, data):
    self.config, self.task, self.cohort = config, task, cohort
    self.model = task.model(config, tuple(w for w in cohort.words if w in task.variants))
    self.x, self.y = jnp.asarray(data.x), jnp.asarray(data.y)
    self.stream = None if data.stream is None else jnp.asarray(data.stream)
    self.stream_train = data.stream_train
    self.n, self.n_train = len(data.y), data.n_train
    self.batches = math.ceil(self.n_train / config.batch_size)
    specs = cohort.models
    self.ranks = {p: jnp.array([m.layer_ranks[p] for m in specs], jnp.int32) for p in cohort.max_ranks}
    self.wd = jnp.array([m.weight_decay for m in specs], jnp.float32)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.array([m.seed for m in specs], jnp.uint32))
    self.init_keys, split_keys, self.data_keys = (jax.vmap(lambda k: jax.random.split(k, 3))(keys)[:, i]
                                                  for i in range(3))
    perms = (jnp.broadcast_to(jnp.arange(self.n), (len(specs), self.n)) if task.fixed_split  # one split for all
             else jax.vmap(lambda k: jax.random.permutation(k, self.n))(split_keys))
    self.train_idx = perms[:, :self.n_train]
    self.is_train = jax.vmap(lambda i: jnp.zeros(self.n, bool).at[i].set(True))(self.train_idx)
    self.traces = 0  # how often the train chunk was traced (= compiled)
    self.shard_models()
    self.chunk = jax.jit(self._chunk, donate_argnums=0, out_shardings=self.sharding)
    self.evaluate = jax.jit(self._evaluate, out_shardings=self.sharding)

  def shard_models(self):
    """Spreads the model axis over every device, padding it with inert copies of the last model."""
    n_dev = self.config.devices or jax.device_count()
    self.mesh = jax.make_mesh((n_dev,), ("models",), axis_types=(jax.sharding.AxisType.Auto,),
                              devices=jax.devices()[:n_dev])
    self.sharding = NamedSharding(self.mesh, P("models"))
    self.size = len(self.cohort.models)
    self.pad = -self.size % n_dev
    replicated = NamedSharding(self.mesh, P())
    self.x, self.y, self.stream = jax.device_put((self.x, self.y, self.stream), replicated)
    for name in PER_MODEL:
      value = jax.tree_util.tree_map(self.padded, getattr(self, name))
      setattr(self, name, jax.device_put(value, self.sharding))

  def padded(self, a):
    return jnp.concatenate([a, jnp.repeat(a[-1:], self.pad, axis=0)]) if self.pad else a

  def init(self):
    """Dense init per model from its seed, then factorised from the SVD of its own initial matrices."""
    return jax.jit(self._init, out_shardings=self.sharding)(self.init_keys)

  def check_memory(self, state):
    """Refuses (ConfigError) a cohort that XLA expects not to fit the device's memory, before it runs; no-op
    where the backend reports no limit (CPU). Compiles the train chunk and evaluation that training then uses."""
    limit = memory.device_memory()[1]
    if not limit:
      return
    est = [memory.xla_bytes(self.chunk, state, jnp.int32(0), jnp.int32(1)),
           memory.xla_bytes(self.evaluate, state["params"])]
    per_device = (self.size + self.pad) // self.mesh.size
    why = memory.refusal(per_device, max((e for e in est if e), default=None), limit)
    if why:
      raise configs.ConfigError(
          f"cohort {self.cohort.name!r}: {self.size} models on {self.mesh.size} device(s) {why}; use fewer seeds "
          "or ranks, a smaller eval_chunk, or more devices")

  def _init(self, keys):
    x = tasks.example(self.task, self.x[:1])
    scale = self.config.get("init_scale", 1.0)

    def one(k):
      p = self.model.init(k, x)["params"]
      if scale != 1.0:
        p = jax.tree_util.tree_map(lambda a: a * scale, p)
      return decompose.factorise(p, self.cohort.max_ranks)

    # lax.map, not vmap: the same numbers, XLA:CPU compiles a vmapped threefry init ~3x slower, and one SVD per
    # matrix avoids LAPACK's batched SVD (its thread-pool wait has hung XLA:CPU)
    params = jax.lax.map(one, keys)
    opt = jax.vmap(self.task.optimizer(self.config, 0.0).init)(params)
    return {"params": params, "opt": opt, "perm": self._epoch_perm(0)}

  def perm_at(self, step):
    """The state's "perm" at `step` (what a restored checkpoint lacks): each model's permutation of its
    training examples for the epoch of `step`."""
    return jax.jit(lambda s: self._epoch_perm(s // self.batches), out_shardings=self.sharding)(jnp.int32(step))

  def _epoch_perm(self, epoch):
    return jax.vmap(lambda k: jax.random.permutation(jax.random.fold_in(k, epoch), self.n_train))(self.data_keys)

  def _batch(self, perm, batch, train_idx, key):
    """(x, y, weights) of one training batch: the model's slice of its epoch permutation (the last batch of an
    epoch is partial), or random windows of the stream; augmented per model where the task says so."""
    bs = self.config.batch_size
    if self.task.sample:
      xb, yb = self.task.sample(self.stream, self.stream_train, key, self.config)
      return xb, yb, jnp.ones(bs)
    pos = batch * bs + jnp.arange(bs)
    idx = train_idx[perm[jnp.minimum(pos, self.n_train - 1)]]
    xb = self.task.augment(key, self.x[idx]) if self.task.augment else tasks.example(self.task, self.x[idx])
    return xb, self.y[idx], (pos < self.n_train).astype(jnp.float32)

  def _update(self, params, opt, perm, batch, train_idx, ranks, wd, key):
    data_key, dropout_key = jax.random.split(key)
    xb, yb, w = self._batch(perm, batch, train_idx, data_key)
    kwargs = {"train": True, "rngs": {"dropout": dropout_key}} if self.task.stochastic else {}

    def loss_fn(p):
      logits = self.model.apply({"params": decompose.recompose(p, ranks)}, xb, **kwargs)
      return jnp.sum(self.task.loss(logits, yb) * w) / jnp.sum(w)

    grads = jax.grad(loss_fn)(params)
    updates, opt = self.task.optimizer(self.config, wd).update(grads, opt, params)
    updates = decompose.mask_updates(updates, ranks)
    return optax.apply_updates(params, updates), opt

  def _chunk(self, state, step0, n):
    """Runs `n` (traced) steps from global step `step0`."""
    self.traces += 1
    update = jax.vmap(self._update, in_axes=(0, 0, 0, None, 0, 0, 0, 0))
    # per model and step: batch sampling, augmentation and dropout draws (unused by deterministic tasks)
    noise = jax.vmap(lambda k: jax.random.split(k)[1])(self.data_keys)

    def body(i, carry):
      params, opt, perm = carry
      step = step0 + i
      batch = step % self.batches
      perm = jax.lax.cond(batch == 0, lambda: self._epoch_perm(step // self.batches), lambda: perm)
      keys = jax.vmap(lambda k: jax.random.fold_in(k, step))(noise)
      params, opt = update(params, opt, perm, batch, self.train_idx, self.ranks, self.wd, keys)
      return params, opt, perm

    # the epoch's permutation is carried from chunk to chunk: computing it costs ~5 s for 180 MNIST models on
    # a CPU, and a chunk-start recomputation made short chunks slow
    carry = (state["params"], state["opt"], state["perm"])
    params, opt, perm = jax.lax.fori_loop(0, n, body, carry)
    return {"params": params, "opt": opt, "perm": perm}

  def per_example(self, dense):
    """(loss, correct) of every example, in passes of `eval_chunk` examples (0 = one pass) to bound memory."""
    chunk = self.config.get("eval_chunk", 0)

    def part(i):
      logits = self.model.apply({"params": dense}, tasks.example(self.task, self.x[i]))
      return self.task.loss(logits, self.y[i]), self.task.correct(logits, self.y[i])

    if not chunk or chunk >= self.n:
      return part(slice(None))
    idx = np.minimum(np.arange(-(-self.n // chunk) * chunk), self.n - 1).reshape(-1, chunk)

    loss, ok = jax.lax.map(part, idx)
    return loss.reshape(-1)[:self.n], ok.reshape(-1)[:self.n]

  def _evaluate(self, params):
    def one(p, ranks, is_train):
      dense = decompose.recompose(p, ranks)
      loss, ok = self.per_example(dense)
      tr, te = is_train.astype(jnp.float32), (~is_train).astype(jnp.float32)
      out = {"train_loss": jnp.sum(loss * tr) / jnp.sum(tr), "train_acc": jnp.sum(ok * tr) / jnp.sum(tr),
             "test_loss": jnp.sum(loss * te) / jnp.sum(te), "test_acc": jnp.sum(ok * te) / jnp.sum(te)}
      flat = jax.tree_util.tree_flatten_with_path(dense)[0]
      out["stable_rank"] = {cohorts.layer_name(decompose.path_str(k)): analysis.stable_rank(v) for k, v in flat
                            if v.ndim == 2}
      return out

    return jax.vmap(one)(params, self.ranks, self.is_train)

  @functools.cached_property
  def param_counts(self):
    """Per model, whole-model parameter totals from decompose.count_params: trained, inference, dense."""
    x = tasks.example(self.task, self.x[:1])
    tree = jax.eval_shape(lambda k: decompose.factorise(self.model.init(k, x)["params"], self.cohort.max_ranks),
                          jax.random.PRNGKey(0))
    return [{f"{k}_params": v for k, v in decompose.count_params(tree, m.layer_ranks)[1].items()}
            for m in self.cohort.models]

  def rows(self, step, params, frac, wall):
    ev = gather(self.evaluate(params))
    out = []
    for i, m in enumerate(self.cohort.models):
      vals = {k: float(ev[k][i]) for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
      ranks = {k: float(v[i]) for k, v in ev["stable_rank"].items()}
      # non-finite parameters give finite argmax accuracies: a model is diverged when a loss or rank is not finite
      diverged = not all(math.isfinite(v) for v in (*vals.values(), *ranks.values()))
      if diverged:
        vals, ranks = dict.fromkeys(vals), dict.fromkeys(ranks)
      out.append({
          "step": step, "model": self.cohort.first + i, "cohort": self.cohort.name, "seed": m.seed,
          "group": ",".join(self.cohort.words) or "none", "rank": m.rank, "pct": m.pct, "frac": frac,
          "layer_ranks": {cohorts.layer_name(p): k for p, k in m.layer_ranks.items()},
          "weight_decay": float(m.weight_decay), **self.param_counts[i], **vals, "diverged": diverged,
          "gap": vals["train_acc"] - vals["test_acc"] if not diverged else None,
          "compression": self.param_counts[i]["trained_params"] / self.param_counts[i]["dense_params"],
          "stable_rank": ranks, "wall": round(wall, 3)})
    return out


def gather(tree):
  """Host numpy copy of (possibly multi-host) sharded arrays."""
  if jax.process_count() > 1:
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.device_get(tree)


# Fields a run may change between its start and a resumption: without --allow_config_change (IGNORED_ON_RESUME)
# or with it (ALLOWED_CHANGES). Every other field shapes the models, their data or their training.
IGNORED_ON_RESUME = ("progress_seconds", "checkpoint_minutes")
ALLOWED_CHANGES = ("steps", "eval_points", "eval_spacing", "eval_chunk", "matmul_precision", "data_dir", "devices",
                   "download")


def check_writable(workdir):
  """Refuses a workdir that is a file or cannot be written (nothing is created), before any loading."""
  probe = os.path.abspath(workdir)
  while not os.path.exists(probe):
    probe = os.path.dirname(probe)
  if not os.path.isdir(probe):
    raise configs.ConfigError(f"workdir {workdir!r}: {probe} is a file, not a directory")
  try:
    with tempfile.TemporaryFile(dir=probe):
      pass
  except OSError as e:
    raise configs.ConfigError(f"workdir {workdir!r}: {probe} is not writable ({e.strerror})") from None
  for name in ("config.json", "metrics.jsonl"):
    p = os.path.join(workdir, name)
    if os.path.exists(p) and not os.access(p, os.W_OK):
      raise configs.ConfigError(f"workdir {workdir!r}: {p} is not writable")


def check_workdir(config, workdir, allow_config_change=False):
  """Refuses to reuse a workdir whose config.json differs from `config` (fields named in the message);
  --allow_config_change lets only ALLOWED_CHANGES differ."""
  p = os.path.join(workdir, "config.json")
  if not os.path.exists(p):
    return
  old = metrics.load_config(workdir)
  new = json.loads(json.dumps(config.to_dict()))
  differ = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k) and k not in IGNORED_ON_RESUME]
  diff = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in differ)
  if differ and not allow_config_change:
    raise configs.ConfigError(f"{workdir} holds a run with another config ({diff}); "
                              "use a new --workdir, or --allow_config_change to continue it anyway")
  refused = [k for k in differ if k not in ALLOWED_CHANGES]
  if refused:
    raise configs.ConfigError(
        f"--allow_config_change cannot continue {workdir}: {', '.join(refused)} changed ({diff}), which changes "
        f"the models, their data or their training; it allows changes to {', '.join(ALLOWED_CHANGES)}")


def write_config(config, workdir):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(config.to_dict(), f, indent=2, sort_keys=True)


def full_state(step, runners, states):
  """What a checkpoint holds: the step, and per cohort params, optimiser state, data keys and splits of the
  real models (padding models are left out, so a run can resume on another number of devices)."""
  per_cohort = []
  for r, s in zip(runners, states):
    c = {"params": s["params"], "opt": s["opt"], "data_keys": r.data_keys, "train_idx": r.train_idx}
    per_cohort.append(jax.tree_util.tree_map(lambda a, n=r.size: a[:n], c))
  return {"step": step, "cohorts": per_cohort}


def restore(ckpt, runners, states, step=None):
  """(step, states) from the newest readable checkpoint, or (None, states) when there is none."""
  sds = lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype)
  abstract = full_state(0, runners, states)
  abstract["cohorts"] = jax.tree_util.tree_map(sds, abstract["cohorts"])
  try:
    found, saved = ckpt.restore(abstract, step)
  except checkpoint.Mismatch as e:
    raise configs.ConfigError(str(e)) from None
  if saved is None:
    return None, states
  out = []
  for r, c, fresh in zip(runners, saved["cohorts"], states):
    if not (np.array_equal(c["data_keys"], gather(r.data_keys)[:r.size])
            and np.array_equal(c["train_idx"], gather(r.train_idx)[:r.size])):
      raise configs.ConfigError(f"checkpoint {found} was made with other seeds or data splits than this config")
    c = {"params": c["params"], "opt": c["opt"]}
    c = jax.tree_util.tree_map(lambda a, f: jnp.concatenate([a, f[a.shape[0]:]]), c,
                               {"params": fresh["params"], "opt": fresh["opt"]})
    out.append(dict(jax.device_put(c, r.sharding), perm=r.perm_at(int(found))))
  return int(found), out


def run(config, workdir, allow_config_change=False):
  """Trains every cohort of `config` in `workdir` (config.json, metrics.jsonl, checkpoints/), resuming from the
  newest checkpoint there; returns (runners, states). Raises Interrupted after saving on SIGTERM/SIGINT."""
  installed = signals.install()  # first: a signal during start-up is kept, and ends the run before training
  try:
    return _run(config, workdir, allow_config_change)
  finally:
    if installed:
      signals.uninstall()


def prepare(config, workdir, allow_config_change=False):
  """Every check before the run loads its data: the workdir, the config's values, an earlier run there; returns
  (task, resolved config). Raises ConfigError naming the first problem."""
  check_writable(workdir)
  task, config = cohorts.resolve(config)
  check_workdir(config, workdir, allow_config_change)
  return task, config


def _run(config, workdir, allow_config_change):
  signals.fault("start-up")
  task, config = prepare(config, workdir, allow_config_change)
  steps = int(config.steps)
  targets = eval_steps(steps, config.eval_points, config.eval_spacing)
  planned = cohorts.plan(config, task)
  data = task.data(config)
  primary = jax.process_index() == 0  # only process 0 writes config.json and metrics.jsonl
  n_models = sum(len(c.models) for c in planned)
  print(f"{n_models} models in {len(planned)} cohort(s): "
        + "; ".join(f"{c.name}: {len(c.models)}" for c in planned) + f"; {steps} steps", flush=True)
  with jax.default_matmul_precision(config.matmul_precision):
    runners = [CohortRunner(config, task, c, data) for c in planned]
    fresh = [r.init() for r in runners]
    for r, s in zip(runners, fresh):
      r.check_memory(s)  # before anything is written
  if signals.received():
    raise Interrupted(signals.received())
  if primary:
    write_config(config, workdir)
  ckpt = checkpoint.Checkpointer(workdir, save_steps=targets, minutes=config.checkpoint_minutes)
  writer = metrics.NullWriter()
  try:
    with jax.default_matmul_precision(config.matmul_precision):
      step, states = restore(ckpt, runners, fresh)
      if step is not None:
        print(f"resumed from the checkpoint at step {step}", flush=True)
      if signals.received():
        raise Interrupted(signals.received(), step)
      step = step or 0
      if primary:  # rows from `step` on are written again: a restored checkpoint regenerates them
        metrics.truncate_from(workdir, step)
        writer = metrics.Writer(workdir)
      progress = progress_lib.Progress(steps, n_models, config.progress_seconds, start_step=step)

      def save(force=False):
        if force or ckpt.due(step):
          ckpt.save(step, full_state(step, runners, states))
          signals.fault("save")
          if step == 0:
            ckpt.wait()
            signals.fault("saved-0")

      for target in targets:
        if target < step:
          continue
        while step < target:
          n, t = progress.next_chunk(target - step), time.time()
          signals.fault("target-chunk" if step + n == target else "chunk")
          states = [r.chunk(s, jnp.int32(step), jnp.int32(n)) for r, s in zip(runners, states)]
          jax.block_until_ready(states)
          progress.chunk_done(n, time.time() - t)
          step += n
          progress(step)
          preempted = jax.process_count() > 1 and ckpt.manager.reached_preemption(step)
          if signals.received() or preempted:
            save(force=True)
            raise Interrupted(signals.received() or "preemption", step)
          if step < target:
            save()
        signals.fault("eval")
        rows = [row for r, s in zip(runners, states) for row in r.rows(step, s["params"], config.frac,
                                                                        time.time() - progress.t0)]
        writer.write(rows)
        progress(step, progress_lib.mean_accs(rows), force=step == steps)
        save()
        if signals.received():
          raise Interrupted(signals.received(), step)
  finally:
    writer.close()
    ckpt.wait()
    ckpt.close()
  return runners, states
