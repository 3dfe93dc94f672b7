"""SIGTERM / SIGINT / SIGHUP as a flag that the run checks between chunks, installed before the slow imports so that a
signal during start-up is kept too; SIGCONT (the end of a SIGSTOP / Ctrl-Z pause) as a time, so that progress
leaves the pause out of its rate; and DLGROK_FAULT, the tests' way to signal the run at a named moment."""
import errno
import os
import signal
import threading
import time

CONT = getattr(signal, "SIGCONT", None)  # absent on Windows
HUP = getattr(signal, "SIGHUP", None)  # absent on Windows; a closed terminal or ssh session sends it
CAUGHT = (signal.SIGTERM, signal.SIGINT) + tuple(s for s in (HUP, CONT) if s)
_state = {"received": None, "old": None, "seen": {}, "continued": None}


def _handle(signum, frame):
  if signum == CONT:
    _state["continued"] = time.time()
  else:
    _state["received"] = _state["received"] or signal.Signals(signum).name


def install():
  """Catches SIGTERM/SIGINT/SIGHUP/SIGCONT from now on (main thread only: Python allows handlers only there); True
  if it did."""
  if _state["old"] is not None or threading.current_thread() is not threading.main_thread():
    return False
  _state["old"] = {sig: signal.signal(sig, _handle) for sig in CAUGHT}
  return True


def uninstall():
  for sig, old in (_state["old"] or {}).items():
    signal.signal(sig, old)
  _state.update(received=None, old=None, seen={}, continued=None)


def received():
  """'SIGTERM' / 'SIGINT' / 'SIGHUP' once one arrived, else None."""
  return _state["received"]


def continued():
  """The time the process last continued after a stop (SIGCONT), once; None if it has not since the last call."""
  t, _state["continued"] = _state["continued"], None
  return t


def fault(moment):
  """Test hook: with DLGROK_FAULT=MOMENT:N:SIGNAL (e.g. eval:2:SIGKILL) the run sends itself SIGNAL the N-th
  time it reaches MOMENT (start-up, chunk, target-chunk, eval, save, saved-0); SIGNAL ENOSPC raises a full disk's
  OSError there instead (write-metrics: after an evaluation's first row; write-checkpoint; write-checksums)."""
  spec = os.environ.get("DLGROK_FAULT")
  if not spec:
    return
  where, n, sig = spec.split(":")
  if where != moment:
    return
  _state["seen"][moment] = _state["seen"].get(moment, 0) + 1
  if _state["seen"][moment] == int(n):
    if sig == "ENOSPC":
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.kill(os.getpid(), getattr(signal, sig))


def clear():
  """Forgets a received signal (a caller that handled it, e.g. a time budget's own SIGTERM, goes on)."""
  _state["received"] = None
