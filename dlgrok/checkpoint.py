"""orbax checkpoints of a run's whole multi-model state under <workdir>/checkpoints.

The saved tree is {'step': int, 'cohorts': [{'params', 'opt', 'data_keys', 'train_idx'}, ...]} with a leading
model axis in every array; plain orbax (`StandardRestore`) reads it without dlgrok.
"""
import os
import signal
import threading
import warnings

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp


def directory(workdir):
  return os.path.abspath(os.path.join(workdir, "checkpoints"))


class Checkpointer:
  """Saves asynchronously, keeps the latest `keep`, restores the newest checkpoint that reads back whole."""

  def __init__(self, workdir, keep=3, read_only=False):
    options = ocp.CheckpointManagerOptions(preservation_policy=pp.LatestN(keep), cleanup_tmp_directories=True,
                                           enable_async_checkpointing=True, read_only=read_only,
                                           create=not read_only)
    self.manager = ocp.CheckpointManager(directory(workdir), options=options)
    self.read_only = read_only

  def steps(self):
    return sorted(self.manager.all_steps())

  def save(self, step, state):
    # A copy: the train loop donates the state's buffers to the next chunk while orbax may still read them.
    state = jax.tree_util.tree_map(jnp.copy, state)
    self.manager.save(step, args=ocp.args.StandardSave(state), force=True)

  def restore(self, abstract_state, step=None):
    """(step, state) of `step`, or of the newest readable checkpoint (older ones tried on failure); (None, None)."""
    steps = [step] if step is not None else self.steps()[::-1]
    for s in steps:
      try:
        return s, self.manager.restore(s, args=ocp.args.StandardRestore(abstract_state))
      except Exception as e:  # noqa: BLE001 - any unreadable checkpoint falls back to the previous one
        if step is not None:
          raise
        warnings.warn(f"checkpoint at step {s} is unreadable ({type(e).__name__}: {str(e)[:200]}); "
                      "removing it and trying an older one")
        if not self.read_only:  # so that training can save this step again
          self.manager.delete(s)
    return None, None

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


class Interrupt:
  """Turns SIGTERM/SIGINT into a flag the train loop checks between chunks."""

  def __init__(self):
    self.signal = None
    self._old = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():  # Python allows handlers only there
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._old[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    self.signal = signal.Signals(signum).name

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)
