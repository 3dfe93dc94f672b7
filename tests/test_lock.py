"""The workdir lock on its own (the CLI runs that collide on one workdir are in test_interrupt.py)."""
import json
import os
import socket
import subprocess
import sys

import pytest

from dlgrok import lock


def test_a_held_lock_is_refused_naming_its_holder(tmp_path):
  wd = str(tmp_path / "w")
  held = lock.acquire(wd)
  with open(lock.path(wd)) as f:
    me = json.load(f)
  assert me["pid"] == os.getpid() and me["host"] == socket.gethostname()
  with pytest.raises(lock.Busy, match="is in use by another run") as e:
    lock.acquire(wd)
  assert str(e.value) == (f"{wd} is in use by another run (pid {os.getpid()} on host {me['host']}, since "
                          f"{me['since']}); wait for it to end or stop it, or use another --workdir (if no run uses "
                          f"it, delete {wd}/lock)")
  assert sorted(os.listdir(wd)) == ["lock"]
  lock.release(wd, held)
  assert not os.path.exists(wd)  # acquire made it, and nothing else was written


def test_a_dead_or_reused_pid_is_taken_over_another_host_is_not(tmp_path, capsys):
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  host = socket.gethostname()
  wd = str(tmp_path)
  for holder in ({"host": host, "pid": dead.pid, "since": "then"},
                 {"host": host, "pid": os.getpid(), "start": -1, "since": "then"}):  # a reused pid
    with open(lock.path(wd), "w") as f:
      json.dump(holder, f)
    held = lock.acquire(wd)
    assert capsys.readouterr().err == (f"taking over the lock of a run that no longer runs (pid {holder['pid']} on "
                                       f"host {host}, since then)\n")
    lock.release(wd, held)
    assert os.listdir(wd) == []
  with open(lock.path(wd), "w") as f:
    json.dump({"host": "elsewhere", "pid": dead.pid, "since": "then"}, f)
  with pytest.raises(lock.Busy, match=r"\(pid \d+ on host elsewhere, since then\)"):
    lock.acquire(wd)
  assert os.listdir(wd) == ["lock"]
