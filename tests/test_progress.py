"""Progress lines: the ETA follows the recent rate (start-up, compilation or a slower phase do not linger)."""
import os
import signal

from dlgrok import progress


def test_eta_uses_the_rate_of_the_last_ten_minutes(monkeypatch, capsys):
  now = [1000.0]
  monkeypatch.setattr(progress.time, "time", lambda: now[0])
  p = progress.Progress(total=10000, n_models=4, every=1.0)
  now[0] += 900  # start-up and compilation: 900 s for the first 100 steps
  p(100)
  assert capsys.readouterr().out.split("ETA ")[1].split()[0] == progress.fmt_time(9900 / (100 / 900))
  for step in range(200, 2001, 100):  # then 10 steps/s
    now[0] += 10
    p(step)
  line = capsys.readouterr().out.strip().splitlines()[-1]
  assert line.startswith("step 2000/10000 (20.0%)")
  # the window still holds the start: (2000 - 0) steps in 900 + 190 s
  assert line.split("ETA ")[1].split()[0] == progress.fmt_time(8000 / (2000 / 1090))
  for step in range(2100, 8001, 100):
    now[0] += 10
    p(step)
  # the start has left the ten-minute window: 10 steps/s, 200 s for the last 2000 steps
  assert capsys.readouterr().out.strip().splitlines()[-1].split("ETA ")[1].split()[0] == "0:03:20"


def test_a_stop_and_continue_is_left_out_of_the_eta(monkeypatch, capsys):
  now = [1000.0]
  monkeypatch.setattr(progress.time, "time", lambda: now[0])  # the time module itself: signals' clock too
  installed = progress.signals.install()  # False where an earlier test in this process left it installed
  assert signal.getsignal(signal.SIGCONT) is progress.signals._handle
  progress.signals.continued()  # forget any earlier SIGCONT
  try:
    p = progress.Progress(total=10000, n_models=4, every=1.0)
    for step in range(100, 1001, 100):  # 10 steps/s
      now[0] += 10
      p(step)
    now[0] += 3600  # SIGSTOP for an hour, then SIGCONT: the kernel continues the process, the handler notes when
    os.kill(os.getpid(), signal.SIGCONT)
    now[0] += 10
    p(1100)
    # 10 steps/s as before the pause: (1100 - 0) steps in 110 s of running, not in 3710 s
    assert capsys.readouterr().out.strip().splitlines()[-1].split("ETA ")[1].split()[0] == "0:14:50"
  finally:
    if installed:
      progress.signals.uninstall()
