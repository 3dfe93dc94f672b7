"""Progress lines of a training run: step, steps/s, model-steps/s, ETA and mean accuracies."""
import collections
import time

import numpy as np


def fmt_time(s):
  s = int(s)
  return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
  """Prints step, steps/s, model-steps/s, ETA and mean accuracies at most every `every` seconds.

  The ETA is the steps left at the recent training rate plus the evaluation points left at the recent seconds per
  evaluation. The first chunk and the first evaluation after a (re)start compile, so neither is counted, nor is
  a chunk during which the process was stopped (SIGSTOP, Ctrl-Z)."""

  WINDOW = 600.0  # seconds of recent training whose rate the ETA uses

  def __init__(self, total, n_models, every, eval_steps=(), continued=lambda: None):
    """`continued()`: the time the process last came back from a pause (signals.Catcher.continued), or None."""
    self.total, self.n_models, self.every, self.continued = total, n_models, every, continued
    self.t0, self.last = time.time(), 0.0
    self.train_rate = 0.0  # steps/s of the last train chunk alone
    self.eval_steps = sorted(eval_steps)
    self.chunks = collections.deque()  # (steps, seconds) of the recent chunks after the first
    self.evals = collections.deque(maxlen=20)  # seconds of the recent evaluations after the first
    self.first_chunk = self.first_eval = True

  def chunk_done(self, n, seconds):
    self.train_rate = n / max(seconds, 1e-9)
    stopped = self.continued() is not None
    if self.first_chunk or stopped:
      self.first_chunk = False
      return
    self.chunks.append((n, seconds))
    while len(self.chunks) > 1 and sum(s for _, s in self.chunks) - self.chunks[0][1] >= self.WINDOW:
      self.chunks.popleft()

  def eval_done(self, seconds):
    if not self.first_eval:
      self.evals.append(seconds)
    self.first_eval = False

  def next_chunk(self, remaining):
    """Steps to run before control comes back: about `every` seconds' worth, at least 1."""
    return max(1, min(remaining, int(self.train_rate * self.every)))

  def eta(self, step):
    """Seconds left after `step`, or None before a chunk after the first has been timed."""
    if not self.chunks:
      return None
    rate = sum(n for n, _ in self.chunks) / max(sum(s for _, s in self.chunks), 1e-9)
    evals_left = sum(1 for s in self.eval_steps if s > step)
    per_eval = float(np.mean(self.evals)) if self.evals else 0.0
    return (self.total - step) / rate + evals_left * per_eval

  def __call__(self, step, accs=None, force=False):
    now = time.time()
    if not force and now - self.last < self.every:
      return
    self.last = now
    left = self.eta(step)
    eta = "?" if left is None else fmt_time(left)
    acc = f"  train_acc {accs[0]:.3f}  test_acc {accs[1]:.3f}" if accs else ""
    if accs and accs[2]:
      acc += f"  ({accs[2]} diverged, left out)"
    print(f"step {step}/{self.total} ({100 * step / max(self.total, 1):.1f}%)  steps/s {self.train_rate:.1f}  "
          f"model-steps/s {self.train_rate * self.n_models:.0f}  ETA {eta}{acc}", flush=True)


def mean_accs(rows):
  """(mean train accuracy, mean test accuracy, models diverged) over the models that have not diverged."""
  ok = [r for r in rows if not r["diverged"]]
  mean = lambda k: float(np.mean([r[k] for r in ok])) if ok else float("nan")
  return mean("train_acc"), mean("test_acc"), len(rows) - len(ok)
