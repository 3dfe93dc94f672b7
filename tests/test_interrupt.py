"""Interruption at any moment, through the CLI: SIGTERM, SIGHUP or SIGKILL, or a full disk, then the same command
again, gives the metrics (less wall-clock fields) and final parameters of an uninterrupted run, bit for bit; so does
a run beside which a second one was started on the same workdir (that one exits at once).

The named moments are reached with DLGROK_FAULT=MOMENT:N:SIGNAL (the run signals itself the N-th time it gets
there); the randomised ones signal the run from outside at a random moment before it ends.
"""
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import CLI_ENV, ROOT
from dlgrok import cohorts, metrics

ARG = "ffn,r8,p=11,op=x+y,width=32,heads=2,f80,steps=300,seeds=2,eval_points=6,batch_size=32"
CMD = [sys.executable, "-m", "dlgrok.main", f"--config={os.path.join(ROOT, 'experiments', 'mod97.py')}:{ARG}",
       "--config.progress_seconds=0.05", "--config.checkpoint_minutes=1000"]
ENV = CLI_ENV  # the CLI runs share the worker's compilations
EVAL = cohorts.eval_steps(300, 6)


def cli(workdir, fault=None, timeout=600):
  env = dict(ENV, DLGROK_FAULT=fault) if fault else ENV
  return subprocess.run(CMD + [f"--workdir={workdir}"], env=env, capture_output=True, text=True, timeout=timeout)


def stripped(workdir):
  return [{k: v for k, v in r.items() if k not in metrics.WALL_FIELDS} for r in metrics.read(workdir)]


def final_params(workdir):
  """The newest checkpoint, read with plain orbax calls (no dlgrok)."""
  with ocp.CheckpointManager(os.path.join(workdir, "checkpoints")) as mngr:
    step = mngr.latest_step()
    return step, ocp.tree.to_flat_dict(mngr.restore(step, args=ocp.args.StandardRestore()))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("reference"))
  done = cli(wd)
  assert done.returncode == 0, done.stderr
  return stripped(wd), final_params(wd)


def same_as_reference(workdir, reference):
  rows, (step, params) = reference
  walls = [r["wall"] for r in metrics.read(workdir)]
  assert walls == sorted(walls) and walls[-1] > 0  # wall counts on across the resume
  got = stripped(workdir)
  assert [r["step"] for r in got] == [r["step"] for r in rows]  # every evaluation point once, in order
  assert got == rows
  got_step, got_params = final_params(workdir)
  assert got_step == step == 300 and got_params.keys() == params.keys() and len(params) > 10
  for k in params:
    assert np.array_equal(np.asarray(got_params[k]), np.asarray(params[k])), k


def interrupted_then_resumed(workdir, fault, reference):
  first = cli(workdir, fault)
  sig = fault.rsplit(":", 1)[1]
  if sig == "SIGKILL":
    assert first.returncode == -signal.SIGKILL, first.stderr
  else:
    assert first.returncode == {"SIGTERM": 143, "SIGHUP": 129}[sig], first.stderr
    assert f"interrupted by {sig}" in first.stderr and "resume with: python -m dlgrok.main" in first.stderr
    assert "Traceback" not in first.stderr
  again = cli(workdir)
  assert again.returncode == 0, again.stderr
  took_over = "taking over the lock of a run that no longer runs (pid "  # a killed run leaves its lock behind
  assert (took_over in again.stderr) == (sig == "SIGKILL" and not fault.startswith("start-up")), again.stderr
  same_as_reference(workdir, reference)
  return first, again


# (moment, N): during start-up; mid-chunk; in the chunk that ends on an evaluation point; during an evaluation;
# during a save (an asynchronous save in flight); right after the step-0 checkpoint is complete
MOMENTS = [("start-up", 1), ("chunk", 3), ("target-chunk", 4), ("eval", 3), ("save", 2), ("saved-0", 1)]
DEFAULT = {("target-chunk", 4, "SIGTERM"), ("saved-0", 1, "SIGKILL"), ("save", 2, "SIGKILL"),
           ("eval", 3, "SIGTERM"), ("chunk", 3, "SIGHUP")}
CASES = [pytest.param(m, n, s, marks=() if (m, n, s) in DEFAULT else pytest.mark.slow, id=f"{m}:{n}:{s}")
         for m, n in MOMENTS for s in ("SIGTERM", "SIGKILL", "SIGHUP")]


@pytest.mark.parametrize("moment,n,sig", CASES)
def test_interrupted_at_a_named_moment_resumes_identically(tmp_path, reference, moment, n, sig):
  first, again = interrupted_then_resumed(str(tmp_path), f"{moment}:{n}:{sig}", reference)
  if (moment, sig) == ("target-chunk", "SIGTERM"):  # saved at the evaluation point before evaluating it
    stopped = int(first.stderr.split("interrupted by SIGTERM at step ")[1].split(";")[0])
    assert stopped in EVAL and f"resumed from the checkpoint at step {stopped}" in again.stdout
  if moment == "chunk" and sig != "SIGKILL":  # saved where it stopped, between evaluation points
    stopped = int(first.stderr.split(f"interrupted by {sig} at step ")[1].split(";")[0])
    assert stopped not in EVAL and f"resumed from the checkpoint at step {stopped}" in again.stdout
  if (moment, sig) == ("start-up", "SIGTERM"):
    assert "during start-up" in first.stderr
  if (moment, sig) == ("saved-0", "SIGKILL"):
    assert "resumed from the checkpoint at step 0" in again.stdout


@pytest.mark.parametrize("trial", [pytest.param(0)] + [pytest.param(i, marks=pytest.mark.slow) for i in range(1, 8)])
def test_interrupted_at_a_random_moment_resumes_identically(tmp_path, reference, trial):
  """The signal comes from outside at a random moment, during start-up or a random time after one of the first
  progress lines (in training, an evaluation or a save), and lands before the run ends: the run stops there."""
  rng = random.Random(trial)
  sig = (signal.SIGTERM, signal.SIGKILL)[trial % 2]
  lines = rng.randrange(0, 6)  # stdout lines to wait for; 0: during start-up
  wd = str(tmp_path)
  proc = subprocess.Popen(CMD + [f"--workdir={wd}"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  seen = [proc.stdout.readline() for _ in range(lines)]
  time.sleep(rng.uniform(0.0, 0.2) if lines else rng.uniform(0.5, 2.0))
  proc.send_signal(sig)
  out, err = proc.communicate(timeout=600)
  assert proc.returncode == {signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}[sig], (seen, out, err)
  assert "Traceback" not in err and f"step {EVAL[-1]}/{EVAL[-1]}" not in "".join(seen) + out
  if sig == signal.SIGTERM:
    assert re.search(r"interrupted by SIGTERM (during start-up|at step \d+; saved)", err), err
  again = cli(wd)
  assert again.returncode == 0, again.stderr
  same_as_reference(wd, reference)


@pytest.mark.parametrize("moment,n,where", [
    pytest.param("write-metrics", 3, "metrics.jsonl", marks=pytest.mark.slow),  # the third evaluation's rows
    ("write-checksums", 2, f"checkpoints/{EVAL[1]}"),  # in orbax's thread, before the checkpoint is committed
    pytest.param("write-checkpoint", 2, f"checkpoints/{EVAL[1]}", marks=pytest.mark.slow)])
def test_a_full_disk_ends_with_one_line_and_loses_nothing(tmp_path, reference, moment, n, where):
  wd = str(tmp_path)
  first = cli(wd, f"{moment}:{n}:ENOSPC")
  assert first.returncode == 1, first.stderr
  assert first.stderr == f"error: disk full writing {os.path.join(wd, where)}: free space and rerun to resume\n"
  assert "Traceback" not in first.stderr and not os.path.exists(os.path.join(wd, "lock"))
  again = cli(wd)
  assert again.returncode == 0, again.stderr
  same_as_reference(wd, reference)


def test_a_second_run_on_a_workdir_in_use_exits_2_at_once(tmp_path, reference):
  """Two runs started together: one trains, the other exits; so does a third started after the first row."""
  wd = str(tmp_path)
  runs = [subprocess.Popen(CMD + [f"--workdir={wd}"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True) for _ in range(2)]
  while all(r.poll() is None for r in runs):
    time.sleep(0.05)
  loser, winner = sorted(runs, key=lambda r: r.poll() is None)
  busy = (rf"error: {re.escape(wd)} is in use by another run \(pid {winner.pid} on host "
          rf"{re.escape(socket.gethostname())}, since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC\); wait for it to end or "
          rf"stop it, or use another --workdir \(if no run uses it, delete {re.escape(wd)}/lock\)\n")
  out, err = loser.communicate()
  assert loser.returncode == 2 and re.fullmatch(busy, err), err
  assert "models in" not in out  # before loading anything
  while not (os.path.exists(metrics.path(wd)) and os.path.getsize(metrics.path(wd))):
    time.sleep(0.05)
  late = cli(wd)
  assert late.returncode == 2 and re.fullmatch(busy, late.stderr), late.stderr
  _, err = winner.communicate(timeout=600)
  assert winner.returncode == 0, err
  assert not os.path.exists(os.path.join(wd, "lock"))
  same_as_reference(wd, reference)
