"""Workdirs on gs://, end to end through the CLI against a GCS emulator on 127.0.0.1 (tests/gcs.py): a run killed
at a save (quick) or stopped by SIGTERM (slow) and rerun equals the same run in a local folder (metrics less wall,
final parameters), metrics.jsonl whole and duplicate-free; an unreadable checkpoint is moved aside on the bucket
(slow); inspect, plot and sweep --status read it (slow); the lock, appends and TensorBoard's reader on a bucket."""
import io
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import orbax.checkpoint as ocp
import pytest

import gcs as gcs_lib
from conftest import CLI_ENV, ROOT
from dlgrok import checkpoint, lock, metrics, workdir as wd

ARG = "ffn,r8,p=11,op=x+y,width=32,heads=2,f80,steps=300,seeds=2,eval_points=6,batch_size=32"
CONFIG = f"--config={os.path.join(ROOT, 'experiments', 'mod97.py')}:{ARG}"
CMD = [sys.executable, "-m", "dlgrok.main", CONFIG, "--config.progress_seconds=0.05",
       "--config.checkpoint_minutes=1000"]


@pytest.fixture(scope="module")
def gcs():
  with gcs_lib.emulator() as env:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
      yield dict(CLI_ENV, **env)
    finally:
      for k, v in old.items():
        if v is None:
          os.environ.pop(k, None)
        else:
          os.environ[k] = v


def cli(env, args, fault=None):
  env = dict(env, DLGROK_FAULT=fault) if fault else env
  return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)


def stripped(workdir):
  return [{k: v for k, v in r.items() if k not in metrics.WALL_FIELDS} for r in metrics.read(workdir)]


def final_params(workdir):
  options = ocp.CheckpointManagerOptions(read_only=True)
  with ocp.CheckpointManager(checkpoint.directory(workdir), options=options) as mngr:
    step = mngr.latest_step()
    return step, ocp.tree.to_flat_dict(mngr.restore(step, args=ocp.args.StandardRestore()))


def assert_same(workdir, reference):
  rows, (step, params) = reference
  got = stripped(workdir)
  assert [r["step"] for r in got] == [r["step"] for r in rows] and len(rows) == 28  # each evaluation once
  assert got == rows
  got_step, got_params = final_params(workdir)
  assert got_step == step == 300 and got_params.keys() == params.keys() and len(params) > 10
  for k in params:
    assert np.array_equal(np.asarray(got_params[k]), np.asarray(params[k])), k


@pytest.fixture(scope="module")
def reference(gcs, tmp_path_factory):
  local = str(tmp_path_factory.mktemp("local"))
  done = cli(gcs, CMD + [f"--workdir={local}"])
  assert done.returncode == 0, done.stderr
  return stripped(local), final_params(local)


@pytest.fixture(scope="module")
def resumed(gcs, reference):
  """gs://bucket/run, killed (SIGKILL) while its second checkpoint is being written, then the same command."""
  run = f"gs://{gcs_lib.BUCKET}/run"
  first = cli(gcs, CMD + [f"--workdir={run}"], fault="save:2:SIGKILL")
  assert first.returncode == -9, first.stderr
  assert wd.exists(lock.path(run))  # a killed run leaves its lock
  again = cli(gcs, CMD + [f"--workdir={run}"])
  assert again.returncode == 0, again.stderr
  assert "taking over the lock of a run that no longer runs" in again.stderr
  assert "resumed from the checkpoint at step" in again.stdout
  return run


def test_a_run_on_gs_killed_at_a_save_and_rerun_equals_the_local_run(gcs, reference, resumed):
  assert_same(resumed, reference)
  names = wd.listdir(resumed)
  assert sorted(names) == ["checkpoints", "config.json", "metrics.jsonl", "tensorboard"], names  # no lock, no part
  assert json.loads(wd.read_text(wd.join(resumed, "config.json")))["steps"] == 300
  assert not [n for n in wd.files(resumed) if "_part_" in n]


def test_tensorboard_reads_the_curves_from_the_bucket(gcs, resumed):
  from tensorboard.backend.event_processing import event_accumulator
  rows = metrics.read(resumed)
  for name, pick in (("ffn/model_3", lambda r: r["model"] == 3), ("ffn/mean", lambda r: r["cohort"] == "ffn")):
    acc = event_accumulator.EventAccumulator(wd.join(resumed, "tensorboard", name))
    acc.Reload()
    got = [(e.step, e.value) for e in acc.Scalars("accuracy/test")]
    steps = sorted({r["step"] for r in rows})
    assert [s for s, _ in got] == steps  # the steps evaluated again after the kill once
    want = [np.float32(np.mean([r["test_acc"] for r in rows if r["step"] == s and pick(r)])) for s in steps]
    assert np.allclose([v for _, v in got], want, rtol=0, atol=1e-7)
    assert "stable_rank/block_0/ffn/fc1" in acc.Tags()["scalars"]


@pytest.mark.slow
def test_inspect_plot_and_sweep_status_read_the_bucket(gcs, resumed):
  done = cli(gcs, [sys.executable, "-m", "dlgrok.inspect", resumed, "--model", "3", "--json"])
  assert done.returncode == 0, done.stderr
  out = json.loads(done.stdout)
  assert out["step"] == 300 and list(out["details"]) == ["3"] and out["workdir"] == resumed
  done = cli(gcs, [sys.executable, "-m", "dlgrok.plot", resumed, "--table"])
  assert done.returncode == 0, done.stderr
  pngs = [line for line in done.stdout.splitlines() if line.endswith(".png")]
  assert pngs and all(p.startswith(f"{resumed}/plots/") for p in pngs)
  for p in pngs:
    assert wd.read_bytes(p)[:8] == b"\x89PNG\r\n\x1a\n"
  from dlgrok import sweep
  assert sweep.status(resumed) == "done"


@pytest.mark.slow
def test_a_run_on_gs_stopped_by_sigterm_and_rerun_equals_the_local_run(gcs, reference):
  run = f"gs://{gcs_lib.BUCKET}/term"
  first = cli(gcs, CMD + [f"--workdir={run}"], fault="chunk:3:SIGTERM")
  assert first.returncode == 143 and "interrupted by SIGTERM at step" in first.stderr, first.stderr
  assert not wd.exists(lock.path(run))  # released on the way out
  again = cli(gcs, CMD + [f"--workdir={run}"])
  assert again.returncode == 0 and "taking over" not in again.stderr, again.stderr
  assert_same(run, reference)


@pytest.mark.slow
def test_an_unreadable_checkpoint_is_moved_aside_on_the_bucket_and_the_run_redone(gcs, reference):
  run = f"gs://{gcs_lib.BUCKET}/corrupt"
  assert cli(gcs, CMD + [f"--workdir={run}"]).returncode == 0
  newest = wd.join(checkpoint.directory(run), "300")
  names = sorted(wd.files(newest))
  victim = next(n for n in names if "/d/" in n)
  wd.write(wd.join(newest, victim), b"\0" * 16)
  again = cli(gcs, CMD + [f"--workdir={run}"])
  assert again.returncode == 0, again.stderr
  assert "checkpoint at step 300 is unreadable" in again.stderr and "moved to" in again.stderr
  aside = wd.join(checkpoint.unreadable_directory(run), "300")
  assert sorted(wd.files(aside)) == names  # moved whole: nothing deleted
  assert_same(run, reference)


def test_the_lock_on_a_bucket(gcs):
  run = f"gs://{gcs_lib.BUCKET}/locked"
  held = lock.acquire(run)
  with pytest.raises(lock.Busy, match=rf"{run} is in use by another run \(pid {os.getpid()} on host "):
    lock.acquire(run)
  lock.release(run, held)
  assert not wd.exists(lock.path(run))
  wd.write(lock.path(run), json.dumps({"host": "elsewhere", "pid": 1, "since": "then"}))
  with pytest.raises(lock.Busy, match="pid 1 on host elsewhere, since then"):
    lock.acquire(run)
  assert wd.create(lock.path(run), "x") is False and wd.create(run + "/other", "x") is True


def test_appending_on_a_bucket_composes_and_rewrites_whole_in_time(gcs, monkeypatch):
  monkeypatch.setattr(wd, "MAX_PARTS", 2)
  p = f"gs://{gcs_lib.BUCKET}/append/log"
  out = wd.Appender(p)
  for i in range(5):
    out.write([f"{i}a\n", f"{i}b\n"])
    assert wd.read_text(p) == "".join(f"{j}a\n{j}b\n" for j in range(i + 1))
  out.close()
  assert wd.listdir(f"gs://{gcs_lib.BUCKET}/append") == ["log"]
  many = wd.Appenders()
  for i in range(3):
    many.write({f"gs://{gcs_lib.BUCKET}/many/{k}/f": f"{k}{i}".encode() for k in "xy"})
  many.close()
  assert [wd.read_text(f"gs://{gcs_lib.BUCKET}/many/{k}/f") for k in "xy"] == ["x0x1x2", "y0y1y2"]
  assert sorted(wd.files(f"gs://{gcs_lib.BUCKET}/many")) == ["x/f", "y/f"]


def test_reproduce_logs_and_packs_its_results_on_a_bucket(gcs):
  from dlgrok import reproduce
  out = f"gs://{gcs_lib.BUCKET}/results"
  wd.write(f"{out}/items/grid80/table.md", "| a |\n")
  wd.write(f"{out}/items/grid80/run/config.json", "{}")
  reproduce.log(out, "one")
  reproduce.log(out, "two")
  reproduce.pack(out)
  assert wd.read_text(f"{out}/reproduce.log") == "one\ntwo\n"
  with tarfile.open(fileobj=io.BytesIO(wd.read_bytes(f"{out}/results.tar.gz"))) as tar:
    assert sorted(tar.getnames()) == ["items/grid80/run/config.json", "items/grid80/table.md"]
    assert tar.extractfile("items/grid80/table.md").read() == b"| a |\n"
  assert sorted(wd.listdir(out)) == ["reproduce.log", "results.tar.gz"]


def test_a_missing_bucket_is_one_line(gcs, tmp_path):
  done = cli(gcs, CMD + ["--workdir=gs://no-such-bucket/run"])
  assert done.returncode == 2 and done.stderr.startswith("error: workdir 'gs://no-such-bucket/run': cannot list "
                                                          "gs://no-such-bucket"), done.stderr
  assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("module", ["main", "plot"])
def test_without_gcsfs_a_bucket_is_one_line_naming_the_extra(module):
  call = ("from dlgrok import main; sys.argv = ['main', '" + CONFIG + "', '--workdir=gs://b/run']; main.run()"
          if module == "main" else "from dlgrok import inputs, plot; inputs.cli(lambda: plot.main(['gs://b/run']))")
  done = subprocess.run([sys.executable, "-c", f"import sys; sys.modules['gcsfs'] = None; {call}"], env=CLI_ENV,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 2, done.stderr
  assert done.stderr.startswith("error: gs://b") and "pip install -e '.[gcs]', which installs gcsfs" in done.stderr
  assert len(done.stderr.strip().splitlines()) == 1, done.stderr
