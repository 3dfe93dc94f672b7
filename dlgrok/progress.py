"""Progress lines of a training run: step, steps/s, model-steps/s, ETA and mean accuracies."""
import collections
import time

import numpy as np

from dlgrok import signals


def fmt_time(s):
  s = int(s)
  return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
  """Prints step, steps/s, model-steps/s, ETA and mean accuracies at most every `every` seconds."""

  WINDOW = 600.0  # seconds: the ETA's rate, evaluations included, over about the last ten minutes

  def __init__(self, total, n_models, every, start_step=0):
    self.total, self.n_models, self.every = total, n_models, every
    self.t0, self.last = time.time(), 0.0
    self.train_rate = 0.0  # steps/s of the last train chunk alone
    self.seen = collections.deque([(self.t0, start_step)])  # (time, step) of the lines printed

  def chunk_done(self, n, seconds):
    self.train_rate = n / max(seconds, 1e-9)

  def next_chunk(self, remaining):
    """Steps to run before control comes back: about `every` seconds' worth, at least 1."""
    return max(1, min(remaining, int(self.train_rate * self.every)))

  def __call__(self, step, accs=None, force=False):
    now = time.time()
    if not force and now - self.last < self.every:
      return
    self.last = now
    cont = signals.continued()
    if cont is not None:  # stopped until `cont` (SIGSTOP, Ctrl-Z): the rate leaves the pause out
      gap = max(0.0, cont - self.seen[-1][0])
      self.seen = collections.deque((t + gap, s) for t, s in self.seen)
    while len(self.seen) > 1 and now - self.seen[1][0] >= self.WINDOW:  # keep one sample at least WINDOW old
      self.seen.popleft()
    t, s = self.seen[0]
    self.seen.append((now, step))
    rate = (step - s) / max(now - t, 1e-9)
    eta = fmt_time((self.total - step) / rate) if step > s else "?"
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
