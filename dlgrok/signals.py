"""What the outside tells a run. The command-line entry points own it: `Catcher` (installed by them only) turns
SIGTERM / SIGINT / SIGHUP into a stop condition that the run checks between chunks, and SIGCONT (the end of a
SIGSTOP / Ctrl-Z pause) into a time that progress leaves out of its rate; `Faults` is the tests' way to make a run
signal itself, or meet a full disk, at a named moment (DLGROK_FAULT, read once by `python -m dlgrok.main`).
Importing this changes nothing, and all state lives in instances."""
import dataclasses
import errno
import os
import signal
import threading
import time
from typing import Callable

CONT = getattr(signal, "SIGCONT", None)  # absent on Windows
HUP = getattr(signal, "SIGHUP", None)  # absent on Windows; a closed terminal or ssh session sends it
CAUGHT = (signal.SIGTERM, signal.SIGINT) + tuple(s for s in (HUP, CONT) if s)
EXIT_CODES = {"SIGHUP": 129, "SIGINT": 130, "SIGTERM": 143}


class Catcher:
  """While installed, keeps the first SIGTERM / SIGINT / SIGHUP as its name and the last SIGCONT as a time."""

  def __init__(self):
    self._received = self._continued = self._old = None

  def _handle(self, signum, frame):
    if signum == CONT:
      self._continued = time.time()
    else:
      self._received = self._received or signal.Signals(signum).name

  def install(self):
    """Catches the signals from now on (main thread only: Python allows handlers only there); returns self."""
    if self._old is None and threading.current_thread() is threading.main_thread():
      self._old = {sig: signal.signal(sig, self._handle) for sig in CAUGHT}
    return self

  def uninstall(self):
    for sig, old in (self._old or {}).items():
      signal.signal(sig, old)
    self._old = None

  def received(self):
    """'SIGTERM' / 'SIGINT' / 'SIGHUP' once one arrived, else None: a run's stop condition."""
    return self._received

  def continued(self):
    """The time the process last continued after a stop (SIGCONT), once; None if it has not since the last call."""
    t, self._continued = self._continued, None
    return t


class Faults:
  """Test hook: with spec MOMENT:N:SIGNAL (e.g. eval:2:SIGKILL) the run sends itself SIGNAL the N-th time it
  reaches MOMENT (start-up, chunk, target-chunk, eval, save, saved-0); SIGNAL ENOSPC raises a full disk's OSError
  there instead (write-metrics: after an evaluation's first row; write-checkpoint; write-checksums)."""

  def __init__(self, spec):
    self.moment, n, self.signal = spec.split(":")
    self.n, self.seen = int(n), 0

  def __call__(self, moment):
    if moment != self.moment:
      return
    self.seen += 1
    if self.seen == self.n:
      if self.signal == "ENOSPC":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
      os.kill(os.getpid(), getattr(signal, self.signal))


def never(*_):
  return None


@dataclasses.dataclass(frozen=True)
class Hooks:
  """A run's hooks besides its stop condition: `continued()` (Catcher.continued: progress leaves a pause out of its
  rate) and `fault(moment)` (Faults: the tests' faults). The default does nothing."""
  continued: Callable[[], float | None] = never
  fault: Callable[[str], None] = never
