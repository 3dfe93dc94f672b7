import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import CLI_ENV, ROOT, tiny_config
from dlgrok import checkpoint, cohorts, configs, metrics, run_config, train

ARG = "ffn,r8,p=11,op=x+y,width=32,heads=2,f80,steps=400,seeds=2,eval_points=6,batch_size=32"
CMD = [sys.executable, "-m", "dlgrok.main", f"--config={os.path.join(ROOT, 'experiments', 'mod97.py')}:{ARG}",
       "--config.progress_seconds=0.05", "--config.checkpoint_minutes=1000"]
ENV = CLI_ENV


def stripped_lines(workdir):
  return [json.dumps({k: v for k, v in r.items() if k not in metrics.WALL_FIELDS}, sort_keys=True)
          for r in metrics.read(workdir)]


def final_params(workdir):
  """The last checkpoint, read with plain orbax calls (no dlgrok)."""
  with ocp.CheckpointManager(os.path.join(workdir, "checkpoints")) as mngr:
    step = mngr.latest_step()
    return step, mngr.restore(step, args=ocp.args.StandardRestore())


@pytest.mark.slow  # the default suite has it in test_interrupt.py's chunk:3:SIGHUP and random-moment cases
def test_sigterm_resume_is_bit_identical(tmp_path):
  a, b = str(tmp_path / "a"), str(tmp_path / "b")
  done = subprocess.run(CMD + [f"--workdir={a}"], env=ENV, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr
  proc = subprocess.Popen(CMD + [f"--workdir={b}"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  for line in proc.stdout:  # interrupt well past the last evaluation point before 400 (121)
    if line.startswith("step ") and 150 <= int(line.split()[1].split("/")[0]) < 300:
      proc.send_signal(signal.SIGTERM)
      break
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 143, err
  stopped = int(err.split("interrupted by SIGTERM at step ")[1].split(";")[0])
  assert 150 <= stopped < 400 and stopped not in cohorts.eval_steps(400, 6)
  assert "resume with: python -m dlgrok.main" in err
  assert max(r["step"] for r in metrics.read(b)) == max(s for s in cohorts.eval_steps(400, 6) if s < stopped)
  resumed = subprocess.run(CMD + [f"--workdir={b}"], env=ENV, capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr
  assert f"resumed from the checkpoint at step {stopped}" in resumed.stdout
  assert stripped_lines(a) == stripped_lines(b)
  (sa, pa), (sb, pb) = final_params(a), final_params(b)
  assert sa == sb == 400
  leaves_a, leaves_b = ocp.tree.to_flat_dict(pa), ocp.tree.to_flat_dict(pb)
  assert leaves_a.keys() == leaves_b.keys() and len(leaves_a) > 10
  for k in leaves_a:
    assert np.array_equal(np.asarray(leaves_a[k]), np.asarray(leaves_b[k])), k


def test_corrupt_latest_checkpoint_falls_back(tmp_path):
  wd = str(tmp_path)
  cfg = tiny_config(group="tok", ranks="r4", baseline=False, checkpoint_minutes=0.0)
  train.run(cfg, wd)
  before = stripped_lines(wd)
  ckdir = checkpoint.directory(wd)
  assert sorted(int(s) for s in os.listdir(ckdir) if s.isdigit()) == [4, 15, 60]
  shutil.copytree(os.path.join(ckdir, "60"), os.path.join(ckdir, "61.orbax-checkpoint-tmp-1"))  # a crash mid-save
  for root, _, files in os.walk(os.path.join(ckdir, "60")):
    for f in files:
      if f != "_CHECKPOINT_METADATA":
        open(os.path.join(root, f), "wb").close()  # truncated files
  with pytest.warns(UserWarning, match="checkpoint at step 60 is unreadable"):
    train.run(cfg, wd)
  assert stripped_lines(wd) == before
  kept = os.path.join(checkpoint.unreadable_directory(wd), "60")  # moved aside for a human, not deleted
  assert os.path.isfile(os.path.join(kept, "_CHECKPOINT_METADATA"))


def test_empty_step_directory_is_moved_aside_and_nothing_is_lost(tmp_path):
  """An empty checkpoints/200/ once made a rerun delete every valid checkpoint and empty metrics.jsonl."""
  wd = str(tmp_path)
  cfg = tiny_config(group="tok", ranks="r4", baseline=False)
  train.run(cfg, wd)
  before = stripped_lines(wd)
  os.makedirs(os.path.join(checkpoint.directory(wd), "200"))
  with pytest.warns(UserWarning, match="checkpoint at step 200 is unreadable"):
    train.run(cfg, wd)
  assert stripped_lines(wd) == before
  assert sorted(int(s) for s in os.listdir(checkpoint.directory(wd))) == [4, 15, 60]
  assert os.listdir(checkpoint.unreadable_directory(wd)) == ["200"]


def test_truncated_last_metrics_line_is_dropped_with_a_warning(tmp_path):
  wd = str(tmp_path)
  cfg = tiny_config(group="tok", ranks="r4", baseline=False)
  train.run(cfg, wd)
  before = stripped_lines(wd)
  ckdir = checkpoint.directory(wd)
  shutil.rmtree(os.path.join(ckdir, "60"))  # killed while writing the rows at step 60, before its checkpoint
  with open(metrics.path(wd), "a") as f:
    f.write('{"step": 60, "model": 0, "test_')
  with pytest.warns(UserWarning, match="dropped its truncated last line"):
    train.run(cfg, wd)
  assert stripped_lines(wd) == before


def test_allow_config_change_refuses_shape_changes_before_touching_anything(tmp_path):
  wd = str(tmp_path)
  cfg = tiny_config(group="tok", ranks="r4", baseline=False, steps=30.0)
  train.run(cfg, wd)
  snapshot = {p: open(p, "rb").read() for p in (metrics.path(wd), os.path.join(wd, "config.json"))}
  ckpts = sorted(os.listdir(checkpoint.directory(wd)))
  for change in ({"group": "out"}, {"seeds": 3}, {"ranks": "r3"}, {"width": 16}):
    with pytest.raises(configs.ConfigError, match="cannot continue") as e:
      train.run(tiny_config(**dict(dict(group="tok", ranks="r4", baseline=False, steps=30.0), **change)), wd,
                allow_config_change=True)
    key = next(iter(change))
    assert str(e.value).startswith(f"--allow_config_change cannot continue {wd}: {key} changed")
    assert "it allows changes to steps, eval_points" in str(e.value)
    assert {p: open(p, "rb").read() for p in snapshot} == snapshot
    assert sorted(os.listdir(checkpoint.directory(wd))) == ckpts
  train.run(tiny_config(group="tok", ranks="r4", baseline=False, steps=60.0), wd, allow_config_change=True)
  assert max(r["step"] for r in metrics.read(wd)) == 60


def test_checkpoint_that_does_not_fit_is_a_one_line_error(tmp_path):
  wd = str(tmp_path)
  train.run(tiny_config(group="tok", ranks="r4", baseline=False, steps=5.0), wd)
  os.remove(os.path.join(wd, "config.json"))  # nothing left to compare the config with
  with pytest.raises(configs.ConfigError, match=r"checkpoint .*/checkpoints/5 does not fit this config: "
                                                r"cohorts/0/opt/0/mu/tok_emb/embedding/S has shape \(2, 4, 4\) where"
                                                r" this config needs \(2, 6, 6\)"):
    train.run(tiny_config(group="tok", ranks="r6", baseline=False, steps=5.0), wd)
  assert sorted(os.listdir(checkpoint.directory(wd))) == ["2", "3", "5"]


def test_workdir_and_config_file_problems_fail_fast_with_one_line(tmp_path):
  f = tmp_path / "afile"
  f.write_text("x")
  for workdir, message in ((str(f), "is a file, not a directory"), (str(f / "sub"), "is a file, not a directory"),
                           ("/proc/dlgrok-test/w", "is not writable")):
    done = subprocess.run(CMD + [f"--workdir={workdir}"], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.startswith("error: workdir") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "models in" not in done.stdout  # before loading
  wd = tmp_path / "w"
  wd.mkdir()
  (wd / "config.json").write_text('{"task": "mod97", ')
  done = subprocess.run(CMD + [f"--workdir={wd}"], env=ENV, capture_output=True, text=True, timeout=300)
  assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
  assert done.stderr.startswith(f"error: {wd}/config.json is not valid JSON")


def test_changed_config_is_refused(tmp_path):
  train.run(tiny_config(steps=5.0, eval_points=2, baseline=False, group="out", ranks="r3"), str(tmp_path))
  with pytest.raises(configs.ConfigError, match=r"another config \(lr: 0.001 -> 0.01; steps: 5 -> 6\)"):
    train.run(tiny_config(steps=6.0, lr=0.01, eval_points=2, baseline=False, group="out", ranks="r3"),
              str(tmp_path))


def test_a_finished_run_writes_nothing_when_run_again(tmp_path, capsys):
  """Run again, a finished run changes no byte (it rewrote its last rows, their wall counted from the row before);
  with a last row missing it evaluates the last step again."""
  wd = str(tmp_path)
  cfg = tiny_config(group="tok", ranks="r4", baseline=False)
  train.run(cfg, wd)

  def files():
    return {os.path.relpath(os.path.join(d, f), wd): open(os.path.join(d, f), "rb").read()
            for d, _, fs in os.walk(wd) for f in fs if "checkpoints" not in d}

  before = files()
  assert [r["step"] for r in metrics.read(wd)][-2:] == [60, 60]
  train.run(cfg, wd)
  assert "finished: every model has its row at step 60" in capsys.readouterr().out
  assert files() == before
  lines = before["metrics.jsonl"].decode().splitlines(keepends=True)
  with open(metrics.path(wd), "w") as f:
    f.write("".join(lines[:-1]))  # model 1's last row lost
  train.run(cfg, wd)
  assert "finished" not in capsys.readouterr().out
  assert stripped_lines(wd) == [json.dumps({k: v for k, v in json.loads(line).items()
                                            if k not in metrics.WALL_FIELDS}, sort_keys=True) for line in lines]


def test_a_steps_change_keeps_every_row(tmp_path):
  """Rows already written stay: a smaller `steps` than reached is refused, and a resumed run evaluates again the
  steps after its checkpoint that have rows, whatever the new schedule (the issue's run lost them)."""
  wd, ckdir = str(tmp_path), checkpoint.directory(str(tmp_path))
  cfg = lambda **k: tiny_config(group="tok", ranks="r4", baseline=False, **k)  # noqa: E731
  train.run(cfg(), wd)  # evaluated at 0, 1, 4, 15, 60
  before = stripped_lines(wd)
  snapshot = {p: open(p, "rb").read() for p in (metrics.path(wd), os.path.join(wd, "config.json"))}
  with pytest.raises(configs.ConfigError, match="is below step 60") as e:
    train.run(cfg(steps=30.0), wd, allow_config_change=True)
  assert str(e.value) == (f"steps=30 is below step 60, which {wd} already reached; continue it with steps >= 60, "
                          "or use a new --workdir")
  assert {p: open(p, "rb").read() for p in snapshot} == snapshot
  shutil.rmtree(os.path.join(ckdir, "60"))  # resumes from 15: 15 and 60 are not in the new schedule, 24 is
  train.run(cfg(steps=120.0), wd, allow_config_change=True)
  after = stripped_lines(wd)
  assert [json.loads(r)["step"] for r in after] == [s for s in (0, 1, 4, 15, 24, 60, 120) for _ in range(2)]
  assert [r for r in after if json.loads(r)["step"] not in (24, 120)] == before
  assert run_config.read(wd)["steps"] == 120


def test_the_checkpoint_records_its_config(tmp_path):
  wd, ckdir = str(tmp_path), checkpoint.directory(str(tmp_path))
  cfg = lambda **k: tiny_config(group="tok", ranks="r4", baseline=False, steps=5.0, **k)  # noqa: E731
  train.run(cfg(), wd)
  os.remove(os.path.join(wd, "config.json"))
  rows = open(metrics.path(wd), "rb").read()
  with pytest.raises(configs.ConfigError, match="was made with another config") as e:
    train.run(cfg(lr=0.003), wd)
  assert str(e.value) == (f"checkpoint {ckdir}/5 was made with another config (lr: 0.001 -> 0.003); give the "
                          "config it was made with, or use a new --workdir")
  assert sorted(os.listdir(wd)) == ["checkpoints", "metrics.jsonl", "tensorboard"]
  assert open(metrics.path(wd), "rb").read() == rows
  with ocp.CheckpointManager(ckdir) as mngr:  # plain orbax reads it
    recorded = json.loads(mngr.restore(5, args=ocp.args.StandardRestore())["config"].tobytes())
  assert recorded["lr"] == 0.001 and recorded["seeds"] == 2 and "steps" not in recorded
  with open(os.path.join(wd, "config.json"), "w") as f:
    f.write("[]")
  with pytest.raises(run_config.ConfigFileError, match="is JSON but not a dlgrok config") as e:
    train.run(cfg(), wd)
  assert str(e.value) == (f"{wd}/config.json is JSON but not a dlgrok config (no task field); restore it or give "
                          "another workdir")
  assert open(os.path.join(wd, "config.json")).read() == "[]"


def test_a_checkpoint_failing_its_checksums_is_moved_aside(tmp_path, capsys):
  wd, ckdir = str(tmp_path), checkpoint.directory(str(tmp_path))
  cfg = tiny_config(group="tok", ranks="r4", baseline=False)
  train.run(cfg, wd)
  before, (_, params) = stripped_lines(wd), final_params(wd)
  files = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(ckdir, "60")) for f in fs]
  largest = max(files, key=os.path.getsize)
  with open(largest, "r+b") as f:
    f.seek(os.path.getsize(largest) // 2)
    flipped = bytes(b ^ 0xFF for b in f.read(4))
    f.seek(-4, 1)
    f.write(flipped)
  with pytest.warns(UserWarning, match=rf"checkpoint at step 60 is unreadable \(ValueError: {re.escape(largest)} "
                                       r"does not match its checksum in .*; moved to .*checkpoints-unreadable/60"):
    train.run(cfg, wd)
  assert "resumed from the checkpoint at step 15" in capsys.readouterr().out
  kept = largest.replace(ckdir, checkpoint.unreadable_directory(wd))
  with open(kept, "rb") as f:
    f.seek(os.path.getsize(kept) // 2)
    assert f.read(4) == flipped  # moved aside as it was
  assert stripped_lines(wd) == before
  step, again = final_params(wd)
  flat, flat_again = ocp.tree.to_flat_dict(params), ocp.tree.to_flat_dict(again)
  assert step == 60 and flat.keys() == flat_again.keys()
  for k in flat:
    assert np.array_equal(np.asarray(flat[k]), np.asarray(flat_again[k])), k


def test_orbax_gives_a_save_a_day_before_failing_it():
  """orbax fails a save unfinished after its timeout, counting wall-clock time: a run stopped (Ctrl-Z, SIGSTOP) for
  longer than orbax's default 20 min while a save was in flight died on resume. dlgrok allows a day."""
  options = checkpoint.manager_options(3, False, (5,), None, lambda: None)
  assert options.async_options.timeout_secs == checkpoint.SAVE_TIMEOUT_SECS == 24 * 3600
  assert ocp.AsyncOptions().timeout_secs < checkpoint.SAVE_TIMEOUT_SECS
