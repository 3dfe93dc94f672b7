"""The run: plan, place and start the cohorts, resume from the newest checkpoint, train chunk by chunk between
evaluation points, write metrics rows, save, and stop cleanly on a signal. The cohort functions are in loop.py.
"""
import json
import os
import tempfile
import time

import jax
import jax.numpy as jnp

from dlgrok import checkpoint, cohorts, configs, loop, memory, metrics, signals
from dlgrok import progress as progress_lib


class Interrupted(Exception):
  """SIGTERM/SIGINT (or a preemption notice) arrived; the state at `step` is in a checkpoint (step None: it
  arrived during start-up, before any training)."""

  def __init__(self, signal_name, step=None):
    super().__init__(f"{signal_name} at step {step}" if step is not None else f"{signal_name} during start-up")
    self.signal_name, self.step = signal_name, step


# Fields a run may change between its start and a resumption: without --allow_config_change (IGNORED_ON_RESUME)
# or with it (ALLOWED_CHANGES). Every other field shapes the models, their data or their training.
IGNORED_ON_RESUME = ("progress_seconds", "checkpoint_minutes")
ALLOWED_CHANGES = ("steps", "eval_points", "eval_spacing", "eval_chunk", "model_batch", "matmul_precision",
                   "data_dir", "devices", "download")


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
  --allow_config_change lets only ALLOWED_CHANGES differ. Fields the earlier run did not have yet (added in a later
  version of dlgrok) are not compared."""
  p = os.path.join(workdir, "config.json")
  if not os.path.exists(p):
    return
  old = json.loads(json.dumps(configs.upgrade(metrics.load_config(workdir))))
  new = json.loads(json.dumps(config.to_dict()))
  differ = [k for k in sorted(old) if old[k] != new.get(k) and k not in IGNORED_ON_RESUME]
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


def check_memory(cohort, fns, state, arrays, data, placement):
  """Refuses (ConfigError) a cohort that XLA expects not to fit the device's memory, before it runs; no-op where
  the backend reports no limit (CPU). Compiles the train chunk and evaluation that training then uses."""
  limit = memory.device_memory()[1]
  if not limit:
    return
  est = [memory.xla_bytes(fns.chunk, state, arrays, data, jnp.int32(0), jnp.int32(1)),
         memory.xla_bytes(fns.evaluate, state["params"], arrays, data)]
  per_device = (placement.size + placement.pad) // placement.devices
  why = memory.refusal(per_device, max((e for e in est if e), default=None), limit)
  if why:
    raise configs.ConfigError(
        f"cohort {cohort.name!r}: {placement.size} models on {placement.devices} device(s) {why}; use fewer "
        "seeds or ranks, a smaller eval_chunk, or more devices")


def prepare(config, workdir, allow_config_change=False):
  """Every check before training, in order: the workdir, the config's values and data (the plan, data loaded
  once), an earlier run there, the memory it needs (estimated from shapes). Returns the plan; raises ConfigError
  naming the first problem."""
  check_writable(workdir)
  plan = cohorts.resolve(config)
  check_workdir(plan.config, workdir, allow_config_change)
  memory.check(plan)
  return plan


def run(config, workdir, allow_config_change=False):
  """Trains every cohort of `config` in `workdir` (config.json, metrics.jsonl, checkpoints/), resuming from the
  newest checkpoint there; returns (plan, states). Raises Interrupted after saving on SIGTERM/SIGINT."""
  installed = signals.install()  # first: a signal during start-up is kept, and ends the run before training
  try:
    return _run(config, workdir, allow_config_change)
  finally:
    if installed:
      signals.uninstall()


def _run(config, workdir, allow_config_change):
  signals.fault("start-up")
  plan = prepare(config, workdir, allow_config_change)
  c = plan.config
  primary = jax.process_index() == 0  # only process 0 writes config.json and metrics.jsonl
  print(f"{plan.n_models} models in {len(plan.cohorts)} cohort(s): "
        + "; ".join(f"{k.name}: {len(k.models)}" for k in plan.cohorts) + f"; {plan.steps} steps", flush=True)
  with jax.default_matmul_precision(c.matmul_precision):
    places, data, arrays, fns = loop.build(plan)
    fresh = [f.init(a, data) for f, a in zip(fns, arrays)]
    for k, f, s, a, p in zip(plan.cohorts, fns, fresh, arrays, places):
      check_memory(k, f, s, a, data, p)  # before anything is written
  if signals.received():
    raise Interrupted(signals.received())
  if primary:
    write_config(c, workdir)
  ckpt = checkpoint.Checkpointer(workdir, save_steps=plan.eval_steps, minutes=c.checkpoint_minutes)
  sizes = [p.size for p in places]
  writer = metrics.NullWriter()
  try:
    with jax.default_matmul_precision(c.matmul_precision):
      try:
        step, saved = checkpoint.restore_into(ckpt, fresh, arrays, sizes, loop.gather)
      except checkpoint.Mismatch as e:
        raise configs.ConfigError(str(e)) from None
      states = fresh
      if step is not None:
        print(f"resumed from the checkpoint at step {step}", flush=True)
        states = [dict(jax.device_put(s, p.sharding), perm=f.perm_at(a, jnp.int32(step)))
                  for s, p, f, a in zip(saved, places, fns, arrays)]
      if signals.received():
        raise Interrupted(signals.received(), step)
      step = step or 0
      wall0 = 0.0
      if primary:  # rows from `step` on are written again: a restored checkpoint regenerates them
        wall0 = metrics.truncate_from(workdir, step)
        writer = metrics.Writer(workdir)
      progress = progress_lib.Progress(plan.steps, plan.n_models, c.progress_seconds, plan.eval_steps)

      def save(force=False):
        if force or ckpt.due(step):
          ckpt.save(step, checkpoint.pack(step, states, arrays, sizes))
          signals.fault("save")
          if step == 0:
            ckpt.wait()
            signals.fault("saved-0")

      for target in plan.eval_steps:
        if target < step:
          continue
        while step < target:
          n, t = progress.next_chunk(target - step), time.time()
          signals.fault("target-chunk" if step + n == target else "chunk")
          states = [f.chunk(s, a, data, jnp.int32(step), jnp.int32(n)) for f, s, a in zip(fns, states, arrays)]
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
        t = time.time()
        wall = wall0 + t - progress.t0
        rows = [row for k, f, s, a in zip(plan.cohorts, fns, states, arrays)
                for row in metrics.rows(k, step, loop.gather(f.evaluate(s["params"], a, data)), wall)]
        writer.write(rows)
        progress.eval_done(time.time() - t)
        progress(step, progress_lib.mean_accs(rows), force=step == plan.steps)
        save()
        if signals.received():
          raise Interrupted(signals.received(), step)
  finally:
    writer.close()
    ckpt.wait()
    ckpt.close()
  return plan, states
