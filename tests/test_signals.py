"""Signals belong to the command lines: importing dlgrok.main installs nothing, a catcher's state is its own, and
an in-process run stops on the condition it is given (reproduce's budget is one)."""
import errno
import os
import signal
import subprocess
import sys

import pytest

from conftest import CLI_ENV, tiny_config
from dlgrok import checkpoint, signals, train


def test_importing_the_entry_points_leaves_the_handlers_alone():
  code = ("import signal; before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)]; "
          "import dlgrok.main, dlgrok.reproduce; "
          "print([signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)] == before)")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=CLI_ENV, timeout=300)
  assert done.stdout == "True\n", done.stderr


def test_catchers_keep_their_own_state_and_restore_the_handlers():
  before = signal.getsignal(signal.SIGTERM)
  first = signals.Catcher().install()
  try:
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)  # the first one is kept
    assert first.received() == "SIGTERM"
  finally:
    first.uninstall()
  assert signal.getsignal(signal.SIGTERM) == before
  assert signals.Catcher().received() is None  # nothing carried over to the next one


def test_faults_fire_at_the_nth_moment_only():
  fault = signals.Faults("eval:2:ENOSPC")
  fault("eval")
  fault("save")
  with pytest.raises(OSError, match="No space left") as e:
    fault("eval")
  assert e.value.errno == errno.ENOSPC
  fault("eval")  # once


def test_a_run_stops_when_its_condition_says_so_and_keeps_ctrl_c(tmp_path):
  """The condition is asked between chunks: the run saves where it stopped and says why; Python's own SIGINT
  handler stays in place throughout (no handler is installed by train.run). Python's handler, or SIG_IGN where
  the suite was started in the background of a shell without job control."""
  asked, ctrl_c = [], signal.getsignal(signal.SIGINT)
  assert ctrl_c in (signal.default_int_handler, signal.SIG_IGN)

  def budget():
    assert signal.getsignal(signal.SIGINT) is ctrl_c
    asked.append(1)
    return "budget" if len(asked) > 3 else None

  wd = str(tmp_path)
  with pytest.raises(train.Interrupted, match=r"budget at step \d+") as e:
    train.run(tiny_config(steps=60.0, eval_points=4, progress_seconds=1e-3), wd, stop=budget)
  assert 0 < e.value.step < 60 and e.value.signal_name == "budget"
  assert checkpoint.Checkpointer(wd, read_only=True).steps()[-1] == e.value.step
  plan, _ = train.run(tiny_config(steps=60.0, eval_points=4, progress_seconds=1e-3), wd)  # resumes to the end
  assert plan.steps == 60
