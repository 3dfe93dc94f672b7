"""orbax checkpoints of a run's whole multi-model state under <workdir>/checkpoints.

The saved tree is {'step': int, 'config': uint8 array, 'cohorts': [{'params', 'opt', 'data_keys', 'train_idx'},
...]} with a leading model axis in every cohort array; 'config' is the JSON of the config fields that shape training
(checkpoints made before it existed lack it). Plain orbax (`StandardRestore`) reads it without dlgrok. When to save
is orbax's save-decision policy: the evaluation steps, at most every `minutes` between them, and on preemption.
<step>/sha256.json holds the SHA-256 of each file of the saved item (written before orbax commits the step);
restoring checks them. Restoring never deletes: an unreadable checkpoint, or one failing its checksums, is moved
to <workdir>/checkpoints-unreadable/ for a human to look at.
"""
import hashlib
import json
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from dlgrok import disk, signals, workdir as wd

SUMS = "sha256.json"
# orbax fails a save still unfinished after this many wall-clock seconds (its default: 20 min); a process stopped
# across a save (Ctrl-Z, SIGSTOP, a suspended machine) counts its pause too, and died on resume.
SAVE_TIMEOUT_SECS = 24 * 3600


class Mismatch(ValueError):
  """A readable checkpoint whose arrays do not fit the state this config builds."""


def directory(workdir):
  return wd.absolute(wd.join(workdir, "checkpoints"))


def unreadable_directory(workdir):
  return wd.absolute(wd.join(workdir, "checkpoints-unreadable"))


class Checkpointer:
  """Saves asynchronously when orbax's policy says so, keeps the latest `keep`, restores the newest readable."""

  def __init__(self, workdir, keep=3, read_only=False, save_steps=(), minutes=None, fault=signals.never):
    options = manager_options(keep, read_only, save_steps, minutes, self._seal)
    self.workdir, self.read_only, self.saving, self.fault = workdir, read_only, None, fault
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
    self.wait()
    # A copy: the train loop donates the state's buffers to the next chunk while orbax may still read them.
    state = jax.tree_util.tree_map(jnp.copy, state)
    self.saving = step
    with disk.writing(wd.join(directory(self.workdir), str(step))):
      self.fault("write-checkpoint")
      return self.manager.save(step, args=ocp.args.StandardSave(state), force=True)

  def _seal(self):
    """Writes the checksums into the finished save's temporary directory, which orbax then renames to <step>
    (on a bucket: <step> itself, which orbax then commits with commit_success.txt): a checkpoint has its
    checksums from the moment it exists."""
    if jax.process_index() != 0:
      return
    self.fault("write-checksums")
    if wd.remote(self.workdir):
      return write_sums(wd.join(directory(self.workdir), str(self.saving)))
    tmp = [d for d in os.listdir(directory(self.workdir)) if d.startswith(f"{self.saving}.orbax-checkpoint-tmp")]
    if len(tmp) != 1:
      raise RuntimeError(f"checkpoint {self.saving}: expected one temporary directory, found {tmp}")
    write_sums(os.path.join(directory(self.workdir), tmp[0]))

  def restore(self, abstract_state, step=None):
    """(step, state) of `step`, or of the newest readable checkpoint; (None, None) when there is none.

    Unreadable ones are moved aside (read-only: skipped); one that reads but does not fit `abstract_state`
    raises Mismatch naming the first array that differs."""
    steps = [step] if step is not None else self.steps()[::-1]
    for s in steps:
      try:
        check_sums(wd.join(directory(self.workdir), str(s)))
        meta = self.manager.item_metadata(s)
        tree = getattr(meta, "tree", meta)
        if tree is None:
          raise ValueError("no metadata")
      except Exception as e:  # noqa: BLE001 - any unreadable checkpoint falls back to the previous one
        self._unreadable(s, e, step)
        continue
      abstract = dict(abstract_state)
      if "config" in tree:  # its length is the saved JSON's
        abstract["config"] = jax.ShapeDtypeStruct(tuple(tree["config"].shape), np.uint8)
      why = mismatch(tree, abstract)
      if why:
        raise Mismatch(f"checkpoint {directory(self.workdir)}/{s} does not fit this config: {why}")
      try:
        return s, self.manager.restore(s, args=ocp.args.StandardRestore(abstract))
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
    with disk.writing(wd.join(directory(self.workdir), str(self.saving))):
      self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


def manager_options(keep, read_only, save_steps, minutes, sealed):
  """orbax's options for a Checkpointer; `sealed` runs when a save is complete."""
  decisions = [policies.SpecificStepsPolicy(frozenset(save_steps)), policies.PreemptionCheckpointingPolicy()]
  if minutes is not None:
    decisions.append(policies.ContinuousCheckpointingPolicy(minimum_interval_secs=int(60 * minutes)))
  return ocp.CheckpointManagerOptions(preservation_policy=pp.LatestN(keep), cleanup_tmp_directories=not read_only,
                                      enable_async_checkpointing=True, read_only=read_only, create=not read_only,
                                      save_decision_policy=policies.AnySavePolicy(decisions),
                                      async_options=ocp.AsyncOptions(timeout_secs=SAVE_TIMEOUT_SECS,
                                                                     post_finalization_callback=sealed))


def pack(step, running, config=None):
  """What a checkpoint holds: the step, the config fields that shape training (a dict, as JSON bytes), and per
  cohort (loop.Running) params, optimiser state, data keys and splits of the real models (padding models are left
  out, so that a run can resume on another number of devices)."""
  cohorts = []
  for r in running:
    c = {"params": r.state["params"], "opt": r.state["opt"], "data_keys": r.arrays["data_keys"],
         "train_idx": r.arrays["train_idx"]}
    cohorts.append(jax.tree_util.tree_map(lambda x, n=r.place.size: x[:n], c))
  out = {"step": step, "cohorts": cohorts}
  if config is not None:
    out["config"] = np.frombuffer(json.dumps(config, sort_keys=True).encode(), np.uint8)
  return out


def restore_into(ckpt, running, host, step=None, config=None):
  """(step, per cohort {"params", "opt"}) of the newest readable checkpoint (or of `step`), padded with the
  padding models of the cohorts' (loop.Running) states; (None, None) when there is none. `host(tree)` copies
  arrays to the host. Raises Mismatch for a checkpoint of other shapes, seeds or data splits, or made with other
  values of `config`'s fields (a dict; None: not compared)."""
  abstract = pack(0, running)
  abstract["cohorts"] = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), abstract["cohorts"])
  found, saved = ckpt.restore(abstract, step)
  if saved is None:
    return None, None
  if config is not None and "config" in saved:
    old = json.loads(np.asarray(saved["config"]).tobytes())
    new = json.loads(json.dumps(config))
    differ = [k for k in sorted(old) if old[k] != new.get(k)]
    if differ:
      raise Mismatch(f"checkpoint {directory(ckpt.workdir)}/{found} was made with another config ("
                     + "; ".join(f"{k}: {old[k]!r} -> {new.get(k)!r}" for k in differ)
                     + "); give the config it was made with, or use a new --workdir")
  out = []
  for c, r in zip(saved["cohorts"], running):
    mine = host({"data_keys": r.arrays["data_keys"], "train_idx": r.arrays["train_idx"]})
    if not all(np.array_equal(c[k], mine[k][:r.place.size]) for k in mine):
      raise Mismatch(f"checkpoint {found} was made with other seeds or data splits than this config")
    out.append(jax.tree_util.tree_map(lambda x, f: jnp.concatenate([x, f[x.shape[0]:]]),
                                      {"params": c["params"], "opt": c["opt"]},
                                      {"params": r.state["params"], "opt": r.state["opt"]}))
  return int(found), out


def move_aside(workdir, step):
  """Moves checkpoints/<step> to checkpoints-unreadable/<step>[.N] and returns the new path (on a bucket: every
  object copied, then deleted)."""
  wd.makedirs(unreadable_directory(workdir))
  dest, n = wd.join(unreadable_directory(workdir), str(step)), 1
  while wd.exists(dest):
    dest, n = wd.join(unreadable_directory(workdir), f"{step}.{n}"), n + 1
  wd.move(wd.join(directory(workdir), str(step)), dest)
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


def _sums(where):
  """SHA-256 of every file in the item directories (the step directory's own files, orbax's step metadata and
  commit marker, are written after the checksums)."""
  out = {}
  for name in wd.files(where):
    if "/" in name:
      with wd.open_file(wd.join(where, name), "rb") as fh:
        out[name] = hashlib.file_digest(fh, "sha256").hexdigest()
  return out


def write_sums(where):
  """Writes <where>/sha256.json whole: every file's SHA-256."""
  wd.write(wd.join(where, SUMS), json.dumps(_sums(where), indent=0, sort_keys=True))


def check_sums(where):
  """Raises ValueError naming a file of checkpoint `where` that differs from its sha256.json, or a file added or
  missing; a checkpoint without sha256.json (older, or killed before writing it) passes."""
  p = wd.join(where, SUMS)
  if not wd.exists(p):
    return
  want = json.loads(wd.read_text(p))
  have = _sums(where)
  bad = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
  if bad:
    raise ValueError(f"{wd.join(where, bad[0])} does not match its checksum in {p}"
                     + (f" ({len(bad) - 1} more files)" if len(bad) > 1 else ""))
