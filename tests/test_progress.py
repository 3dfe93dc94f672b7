"""Progress lines: the ETA is the steps left at the recent training rate plus the evaluations left, leaving out
compilation (the first chunk and evaluation after a start) and a stopped process's pause."""
import os
import signal

import pytest

from dlgrok import cohorts, progress, signals


def simulate(monkeypatch, steps, rate, per_eval, compile_s, schedule):
  """A run driven as train.py drives Progress, on a fake clock: [(step, ETA, seconds actually left)]."""
  now = [1000.0]
  monkeypatch.setattr(progress.time, "time", lambda: now[0])
  p = progress.Progress(steps, 1, every=10.0, eval_steps=schedule)
  seen, step = [], 0
  for i, target in enumerate(schedule):
    while step < target:
      n = p.next_chunk(target - step)
      dt = n / rate + (compile_s if step == 0 else 0.0)
      now[0] += dt
      p.chunk_done(n, dt)
      step += n
      seen.append((step, p.eta(step), now[0]))
    dt = per_eval + (compile_s if i == 0 else 0.0)
    now[0] += dt
    p.eval_done(dt)
  return [(s, eta, now[0] - t) for s, eta, t in seen]


@pytest.mark.parametrize("steps, rate, per_eval", [(5000, 50.0, 0.3), (10**6, 30.0, 0.25)])
def test_eta_from_the_rate_after_compilation_within_a_fifth_from_10_percent(monkeypatch, steps, rate, per_eval):
  """A 3-minute run (5000 steps, 82 evaluations, 30 s of compilation) and a 9-hour one: from 10 % of the run on,
  the ETA is within 0.8x-1.25x of the time actually left."""
  schedule = cohorts.default_eval_steps(steps, cohorts.eval_cost(9312, 512))
  seen = simulate(monkeypatch, steps, rate, per_eval, 30.0, schedule)
  late = [(s, eta, left) for s, eta, left in seen if steps // 10 <= s < steps]
  assert late and all(eta is not None for _, eta, _ in late)
  worst = max(max(eta / left, left / eta) for _, eta, left in late)
  assert worst < 1.25, worst
  assert seen[0][1] is None  # after the compiling chunk alone: no rate yet


def test_the_eta_follows_the_last_ten_minutes_of_training():
  p = progress.Progress(total=100000, n_models=1, every=10.0)
  for _ in range(71):  # the compiling chunk, then 700 s at 10 steps/s
    p.chunk_done(100, 10.0)
  for _ in range(70):  # then 700 s at 5 steps/s: the faster stretch has left the window
    p.chunk_done(50, 10.0)
  assert p.eta(10500) == (100000 - 10500) / 5


def test_a_stop_and_continue_is_left_out_of_the_eta(monkeypatch):
  now = [1000.0]
  monkeypatch.setattr(progress.time, "time", lambda: now[0])  # the time module itself: the catcher's clock too
  before = signal.getsignal(signal.SIGCONT)
  catcher = signals.Catcher().install()
  try:
    assert signal.getsignal(signal.SIGCONT) == catcher._handle
    p = progress.Progress(total=10000, n_models=4, every=1.0, continued=catcher.continued)
    for _ in range(11):  # the first (compiling) chunk, then 10 steps/s
      now[0] += 10
      p.chunk_done(100, 10.0)
    now[0] += 3600  # SIGSTOP for an hour inside a chunk, then SIGCONT: the handler notes when
    os.kill(os.getpid(), signal.SIGCONT)
    p.chunk_done(100, 3610.0)
    assert progress.fmt_time(p.eta(1200)) == progress.fmt_time(8800 / 10)  # 10 steps/s as before the pause
  finally:
    catcher.uninstall()
  assert signal.getsignal(signal.SIGCONT) == before
