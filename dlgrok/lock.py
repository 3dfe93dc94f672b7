"""One writer per workdir: <workdir>/lock names the run that holds it (host, pid, process start, since).

The lock is created only if `lock` does not exist, atomically (workdir.create: locally a hard link, also atomic on
NFS; on a bucket an upload with ifGenerationMatch=0). A lock whose process is gone (same host, pid not alive or started at another time: a
killed run) is taken over with one line saying so; one held on another host is only ever released by its run or
by hand; on a bucket taking over a stale lock is a delete and a create, so two runs of one host racing for it
in the same moment can both read their own lock back (only then). Readers (inspect, plot) take no lock.
"""
import datetime
import json
import os
import socket
import sys

from dlgrok import configs, workdir as wd


class Busy(configs.ConfigError):
  """Another run holds the workdir's lock."""


def path(workdir):
  return wd.join(workdir, "lock")


def _start_ticks(pid):
  """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart; None elsewhere."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return int(f.read().rsplit(")", 1)[1].split()[19])
  except (OSError, IndexError, ValueError):
    return None


def _alive(holder):
  """Whether the process named in a lock on this host still runs."""
  pid = holder.get("pid")
  if not isinstance(pid, int) or pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass  # alive, another user's
  start = holder.get("start")
  return start is None or _start_ticks(pid) in (None, start)


def _read(p):
  try:
    holder = json.loads(wd.read_text(p))
    return holder if isinstance(holder, dict) else {}
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return {}


def describe(holder):
  return (f"pid {holder.get('pid')} on host {holder.get('host')}, since {holder.get('since')}"
          if holder else "a lock file that cannot be read")


def acquire(workdir):
  """Takes the workdir's lock (creating the workdir) or raises Busy naming the run that holds it; returns what
  release() needs."""
  created = not wd.isdir(workdir)
  wd.makedirs(workdir)
  p = path(workdir)
  me = {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_ticks(os.getpid()),
        "since": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}
  for _ in range(3):
    if wd.create(p, json.dumps(me)):
      return me, created
    holder = _read(p)
    if holder is None:
      continue  # released meanwhile
    if holder.get("host") != me["host"] or _alive(holder) or not holder:
      raise Busy(f"{workdir} is in use by another run ({describe(holder)}); wait for it to end or stop it, or "
                 f"use another --workdir (if no run uses it, delete {p})")
    if wd.remote(p):
      if _read(p) == holder:
        wd.remove(p)
    else:
      stale = f"{p}.stale.{me['pid']}"
      os.rename(p, stale)
      if _read(stale) != holder:  # another run took it over between the read and the rename: give it back
        try:
          os.link(stale, p)
        finally:
          os.remove(stale)
        continue
      os.remove(stale)
    print(f"taking over the lock of a run that no longer runs ({describe(holder)})", file=sys.stderr, flush=True)
  raise Busy(f"{workdir}: could not take {p}; try again")


def release(workdir, held):
  """Removes the lock if it is still this run's, and the workdir if acquire() made it and it stayed empty."""
  me, created = held
  if _read(path(workdir)) == me:
    wd.remove(path(workdir))
  if created:
    wd.rmdir_if_empty(workdir)
