"""The run: plan, place and start the cohorts, resume from the newest checkpoint, train chunk by chunk between
evaluation points, write metrics rows, save, and stop cleanly on a signal. The cohort functions are in loop.py.
"""
import json
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from dlgrok import checkpoint, cohorts, configs, disk, events, lock, loop, memory, metrics, run_config, signals
from dlgrok import workdir as wd
from dlgrok import progress as progress_lib


class Interrupted(Exception):
  """SIGTERM/SIGINT/SIGHUP (or a preemption notice) arrived; the state at `step` is in a checkpoint (step None: it
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
  if wd.remote(workdir):
    return check_bucket(workdir)
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


def check_bucket(workdir):
  """Refuses a remote workdir whose bucket cannot be listed (missing, no access) or that is an object."""
  bucket = "/".join(workdir.split("/")[:3])
  try:
    wd.listdir(bucket)
    if wd.isfile(workdir):
      raise configs.ConfigError(f"workdir {workdir!r} is an object, not a folder")
  except OSError as e:
    raise configs.ConfigError(f"workdir {workdir!r}: cannot list {bucket} ({type(e).__name__}: {e})") from None
  except wd.NoClient as e:
    raise configs.ConfigError(str(e)) from None


def check_workdir(config, workdir, allow_config_change=False):
  """Refuses to reuse a workdir whose config.json differs from `config` (fields named in the message);
  --allow_config_change lets only ALLOWED_CHANGES differ. Fields the earlier run did not have yet (added in a later
  version of dlgrok) are not compared."""
  if not wd.exists(run_config.path(workdir)):
    return
  old = json.loads(json.dumps(run_config.read(workdir)))
  new = json.loads(json.dumps(run_config.as_json(config)))
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


def plural(n, word):
  return f"{n:,} {word}{'s' * (n != 1)}"


def describe(plan):
  """'3 models in 2 cohorts (baseline: 1; all: 2); 5000 steps, 82 evaluations'."""
  cohorts = "; ".join(f"{k.name}: {len(k.models)}" for k in plan.cohorts)
  return (f"{plural(plan.n_models, 'model')} in {plural(len(plan.cohorts), 'cohort')} ({cohorts}); "
          f"{plural(plan.steps, 'step')}, {plural(len(plan.eval_steps), 'evaluation')}")


def check_steps(steps, reached, workdir):
  """Refuses a `steps` below `reached` (the last step with rows, or of the checkpoint): a run never deletes rows
  to go back."""
  if steps < reached:
    raise configs.ConfigError(f"steps={steps} is below step {reached}, which {workdir} already reached; "
                              f"continue it with steps >= {reached}, or use a new --workdir")


def training_fields(config):
  """The config fields a checkpoint records: those that shape the models, their data or their training."""
  return {k: v for k, v in json.loads(json.dumps(config.to_dict())).items()
          if k not in ALLOWED_CHANGES + IGNORED_ON_RESUME}


def shared(values):
  """Process 0's list of ints on every process."""
  if jax.process_count() == 1:
    return list(values)
  n = int(multihost_utils.broadcast_one_to_all(np.int64(len(values))))
  mine = np.asarray(values if jax.process_index() == 0 else [0] * n, np.int64).reshape(n)
  return [int(v) for v in multihost_utils.broadcast_one_to_all(mine)]


def check_memory(r, data):
  """Refuses (ConfigError) a cohort (loop.Running) that XLA expects not to fit the device's memory, before it
  runs; no-op where the backend reports no limit (CPU). Compiles the train chunk and evaluation that training
  then uses."""
  limit = memory.device_memory()[1]
  if not limit:
    return
  est = [memory.xla_bytes(r.fns.chunk, r.state, r.arrays, data, jnp.int32(0), jnp.int32(1)),
         memory.xla_bytes(r.fns.evaluate, r.state["params"], r.arrays, data)]
  place = r.place
  why = memory.refusal((place.size + place.pad) // place.devices, max((e for e in est if e), default=None), limit)
  if why:
    raise configs.ConfigError(
        f"cohort {r.cohort.name!r}: {place.size} models on {place.devices} device(s) {why}; use fewer seeds or "
        "ranks, a smaller eval_chunk, or more devices")


def prepare(config, workdir, allow_config_change=False):
  """Every check before training, in order: the workdir, the config's values and data (the plan, data loaded
  once), an earlier run there, the memory it needs (estimated from shapes). Returns the plan; raises ConfigError
  naming the first problem."""
  check_writable(workdir)
  return checked_plan(config, workdir, allow_config_change)


def checked_plan(config, workdir, allow_config_change):
  """prepare's checks after the workdir's (which run makes before it takes the lock)."""
  plan = cohorts.resolve(config)
  check_workdir(plan.config, workdir, allow_config_change)
  check_steps(plan.steps, max(metrics.steps(workdir), default=0), workdir)
  memory.check(plan)
  return plan


def run(config, workdir, allow_config_change=False, stop=signals.never, hooks=signals.Hooks()):
  """Trains every cohort of `config` in `workdir` (config.json, metrics.jsonl, checkpoints/), resuming from the
  newest checkpoint there; returns (plan, states). `stop()` is asked after start-up and between chunks; once it
  gives a reason (the CLI's: a signal's name; reproduce's: 'budget' too), the run saves and raises Interrupted.
  `hooks`: progress's pause clock and the tests' faults."""
  hooks.fault("start-up")
  check_writable(workdir)
  primary = jax.process_index() == 0  # only process 0 writes config.json and metrics.jsonl, and holds the lock
  with disk.writing(lock.path(workdir)):
    held = lock.acquire(workdir) if primary else None
  try:
    return _locked(config, workdir, allow_config_change, primary, stop, hooks)
  finally:
    if held:
      lock.release(workdir, held)


def _locked(config, workdir, allow_config_change, primary, stop, hooks):
  plan = checked_plan(config, workdir, allow_config_change)
  c = plan.config
  print(describe(plan), flush=True)
  with jax.default_matmul_precision(c.matmul_precision):
    data, running = loop.start(plan)
    for r in running:
      check_memory(r, data)  # before anything is written
  if stop():
    raise Interrupted(stop())
  # steps that already have rows are evaluated again if they come after the restored checkpoint, even where the
  # schedule has changed (--allow_config_change), so that resuming never loses a row
  written = shared(sorted(s for s in metrics.steps(workdir) if s <= plan.steps) if primary else [])
  ckpt = checkpoint.Checkpointer(workdir, save_steps=sorted(set(plan.eval_steps) | set(written)),
                                 minutes=c.checkpoint_minutes, fault=hooks.fault)
  record = training_fields(c)
  writer, curves = metrics.NullWriter(), metrics.NullWriter()
  try:
    with jax.default_matmul_precision(c.matmul_precision):
      try:
        step, saved = checkpoint.restore_into(ckpt, running, loop.gather, config=record)
      except checkpoint.Mismatch as e:
        raise configs.ConfigError(str(e)) from None
      check_steps(plan.steps, step or 0, workdir)
      if primary:
        run_config.write(c, workdir)
      if step is not None:
        print(f"resumed from the checkpoint at step {step}", flush=True)
        for r, s in zip(running, saved):
          r.state = dict(jax.device_put(s, r.place.sharding), perm=r.fns.perm_at(r.arrays, jnp.int32(step)))
      if stop():
        raise Interrupted(stop(), step)
      step = step or 0
      # a finished run (its checkpoint at the last step, every model's row there) writes nothing: evaluating the
      # last step again would rewrite its rows, their wall counted on from the row before
      finished = step == plan.steps and shared(
          sorted(metrics.models_at(workdir, step)) if primary else []) == list(range(plan.n_models))
      if finished:
        print(f"finished: every model has its row at step {step}; nothing to train or write", flush=True)
      targets = [] if finished else sorted(set(plan.eval_steps) | {s for s in written if s >= step})
      wall0 = 0.0
      if primary and not finished:  # rows from `step` on are written again: a restored checkpoint regenerates them
        wall0 = metrics.truncate_from(workdir, step)
        writer, curves = metrics.Writer(workdir, fault=hooks.fault), events.Writer(workdir, step)
      progress = progress_lib.Progress(plan.steps, plan.n_models, c.progress_seconds, targets, hooks.continued)

      def save(force=False):
        if force or ckpt.due(step):
          ckpt.save(step, checkpoint.pack(step, running, record))
          hooks.fault("save")
          if step == 0:
            ckpt.wait()
            hooks.fault("saved-0")

      for target in targets:
        if target < step:
          continue
        while step < target:
          n, t = progress.next_chunk(target - step), time.time()
          hooks.fault("target-chunk" if step + n == target else "chunk")
          for r in running:
            r.state = r.fns.chunk(r.state, r.arrays, data, jnp.int32(step), jnp.int32(n))
          jax.block_until_ready([r.state for r in running])
          progress.chunk_done(n, time.time() - t)
          step += n
          if step < target:  # at the target the evaluation's line follows, with its accuracies
            progress(step)
          preempted = jax.process_count() > 1 and ckpt.manager.reached_preemption(step)
          why = stop() or ("preemption" if preempted else None)
          if why:
            save(force=True)
            raise Interrupted(why, step)
          if step < target:
            save()
        hooks.fault("eval")
        t = time.time()
        wall = wall0 + t - progress.t0
        rows = []
        for r in running:
          rows += metrics.rows(r.cohort, step, loop.gather(r.fns.evaluate(r.state["params"], r.arrays, data)), wall)
        writer.write(rows)
        curves.write(rows)
        progress.eval_done(time.time() - t)
        progress(step, progress_lib.mean_accs(rows), force=step == plan.steps)
        save()
        if stop():
          raise Interrupted(stop(), step)
  except BaseException as e:
    for finish in (writer.close, curves.close, ckpt.wait, ckpt.close):  # without hiding `e`, unless the disk is full
      try:
        finish()
      except Exception as later:  # noqa: BLE001
        if disk.is_full(later) and not isinstance(e, disk.Full):
          raise later from e
    raise
  writer.close()
  curves.close()
  ckpt.wait()
  ckpt.close()
  return plan, [r.state for r in running]
