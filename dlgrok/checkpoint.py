"""orbax checkpoints of a run's whole multi-model state under <workdir>/checkpoints.

The saved tree is {'step': int, 'cohorts': [{'params', 'opt', 'data_keys', 'train_idx'}, ...]} with a leading
model axis in every array; plain orbax (`StandardRestore`) reads it without dlgrok. When to save is orbax's
save-decision policy: the evaluation steps, at most every `minutes` between them, and on preemption. Restoring
never deletes: an unreadable checkpoint is moved to <workdir>/checkpoints-unreadable/ for a human to look at.
"""
import os
import shutil
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp


class Mismatch(ValueError):
  """A readable checkpoint whose arrays do not fit the state this config builds."""


def directory(workdir):
  return os.path.abspath(os.path.join(workdir, "checkpoints"))


def unreadable_directory(workdir):
  return os.path.abspath(os.path.join(workdir, "checkpoints-unreadable"))


class Checkpointer:
  """Saves asynchronously when orbax's policy says so, keeps the latest `keep`, restores the newest readable."""

  def __init__(self, workdir, keep=3, read_only=False, save_steps=(), minutes=None):
    decisions = [policies.SpecificStepsPolicy(frozenset(save_steps)), policies.PreemptionCheckpointingPolicy()]
    if minutes is not None:
      decisions.append(policies.ContinuousCheckpointingPolicy(minimum_interval_secs=int(60 * minutes)))
    options = ocp.CheckpointManagerOptions(preservation_policy=pp.LatestN(keep), cleanup_tmp_directories=True,
                                           enable_async_checkpointing=True, read_only=read_only,
                                           create=not read_only,
                                           save_decision_policy=policies.AnySavePolicy(decisions))
    self.workdir, self.read_only = workdir, read_only
    self.manager = ocp.CheckpointManager(directory(workdir), item_handlers=ocp.StandardCheckpointHandler(),
                                         options=options)

  def steps(self):
    return sorted(self.manager.all_steps())

  def due(self, step):
    """Whether the policy asks for a checkpoint at `step` (never for a step already saved or older)."""
    return self.manager.should_save(step)

  def save(self, step, state):
    """Saves `state` at `step` unless a checkpoint at `step` or later exists; True if it saved."""
    latest = self.manager.latest_step()
    if latest is not None and latest >= step:
      return False
    # A copy: the train loop donates the state's buffers to the next chunk while orbax may still read them.
    state = jax.tree_util.tree_map(jnp.copy, state)
    return self.manager.save(step, args=ocp.args.StandardSave(state), force=True)

  def restore(self, abstract_state, step=None):
    """(step, state) of `step`, or of the newest readable checkpoint; (None, None) when there is none.

    Unreadable ones are moved aside (read-only: skipped); one that reads but does not fit `abstract_state`
    raises Mismatch naming the first array that differs."""
    steps = [step] if step is not None else self.steps()[::-1]
    for s in steps:
      try:
        meta = self.manager.item_metadata(s)
        tree = getattr(meta, "tree", meta)
        if tree is None:
          raise ValueError("no metadata")
      except Exception as e:  # noqa: BLE001 - any unreadable checkpoint falls back to the previous one
        self._unreadable(s, e, step)
        continue
      why = mismatch(tree, abstract_state)
      if why:
        raise Mismatch(f"checkpoint {directory(self.workdir)}/{s} does not fit this config: {why}")
      try:
        return s, self.manager.restore(s, args=ocp.args.StandardRestore(abstract_state))
      except Exception as e:  # noqa: BLE001
        self._unreadable(s, e, step)
    return None, None

  def _unreadable(self, s, error, asked):
    if asked is not None:
      raise error
    where = "left in place (read-only)"
    if not self.read_only:
      where = f"moved to {move_aside(self.workdir, s)}"
      self.manager.reload()
    warnings.warn(f"checkpoint at step {s} is unreadable ({type(error).__name__}: {str(error)[:200]}); {where}; "
                  "trying an older one")

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


def pack(step, states, arrays, sizes):
  """What a checkpoint holds: the step, and per cohort params, optimiser state, data keys and splits of the real
  models (padding models are left out, so that a run can resume on another number of devices)."""
  cohorts = []
  for s, a, n in zip(states, arrays, sizes):
    c = {"params": s["params"], "opt": s["opt"], "data_keys": a["data_keys"], "train_idx": a["train_idx"]}
    cohorts.append(jax.tree_util.tree_map(lambda x, n=n: x[:n], c))
  return {"step": step, "cohorts": cohorts}


def restore_into(ckpt, states, arrays, sizes, host, step=None):
  """(step, per cohort {"params", "opt"}) of the newest readable checkpoint (or of `step`), padded with the
  padding models of `states`; (None, None) when there is none. `host(tree)` copies arrays to the host. Raises
  Mismatch for a checkpoint of other shapes, seeds or data splits."""
  abstract = pack(0, states, arrays, sizes)
  abstract["cohorts"] = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), abstract["cohorts"])
  found, saved = ckpt.restore(abstract, step)
  if saved is None:
    return None, None
  out = []
  for c, fresh, a, n in zip(saved["cohorts"], states, arrays, sizes):
    mine = host({"data_keys": a["data_keys"], "train_idx": a["train_idx"]})
    if not all(np.array_equal(c[k], mine[k][:n]) for k in mine):
      raise Mismatch(f"checkpoint {found} was made with other seeds or data splits than this config")
    out.append(jax.tree_util.tree_map(lambda x, f: jnp.concatenate([x, f[x.shape[0]:]]),
                                      {"params": c["params"], "opt": c["opt"]},
                                      {"params": fresh["params"], "opt": fresh["opt"]}))
  return int(found), out


def move_aside(workdir, step):
  """Moves checkpoints/<step> to checkpoints-unreadable/<step>[.N] and returns the new path."""
  os.makedirs(unreadable_directory(workdir), exist_ok=True)
  dest, n = os.path.join(unreadable_directory(workdir), str(step)), 1
  while os.path.exists(dest):
    dest, n = os.path.join(unreadable_directory(workdir), f"{step}.{n}"), n + 1
  shutil.move(os.path.join(directory(workdir), str(step)), dest)
  return dest


def mismatch(saved, abstract):
  """Why the saved tree's arrays do not fit `abstract` (names and shapes), or None."""
  have, want = ocp.tree.to_flat_dict(saved), ocp.tree.to_flat_dict(abstract)
  if have.keys() != want.keys():
    extra, missing = sorted(have.keys() - want.keys()), sorted(want.keys() - have.keys())
    name = lambda k: "/".join(k)
    return (f"it holds {len(have)} arrays where this config needs {len(want)}"
            + (f"; not needed: {name(extra[0])}" if extra else "") + (f"; missing: {name(missing[0])}" if missing else ""))
  for k in sorted(want):
    shape, need = tuple(getattr(have[k], "shape", None) or ()), tuple(getattr(want[k], "shape", ()))
    if shape != need:
      return f"{'/'.join(k)} has shape {shape} where this config needs {need}"
  return None
