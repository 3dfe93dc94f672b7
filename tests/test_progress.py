"""Progress lines: the ETA follows the recent rate (start-up, compilation or a slower phase do not linger)."""
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
