import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import CLI_ENV, ROOT, experiment
from dlgrok import cohorts, sweep

EXP = os.path.join(ROOT, "experiments", "mod97.py")
SLURM_SH = os.path.join(ROOT, "launch", "slurm.sh")
TINY = "p=11,op=x+y,width=32,heads=2,seeds=1,batch_size=32,progress_seconds=0.05,checkpoint_minutes=1000"


def test_paper_grid_jobs_parse_and_cover_31_configurations_per_fraction():
  grid = sweep.jobs(EXP, sweep.PAPER_GROUPS.split(","), ["50", "65", "80"])
  assert len(grid) == 21 and len({w for w, _ in grid}) == 21
  configs = 0
  for workdir, argv in grid:
    assert argv[:3] == ["python", "-m", "dlgrok.main"] and argv[4] == f"--workdir={workdir}"
    arg = argv[3].split(":", 1)[1]
    plan = cohorts.resolve(experiment("mod97", arg))
    config, planned = plan.config, plan.cohorts
    ranks = {m.rank for c in planned for m in c.models}
    configs += len(ranks)
    assert config.seeds == 5 and config.frac in (0.5, 0.65, 0.8)
  assert configs == 31 * 3


def test_cli_lines_slurm_and_status(tmp_path, capsys):
  sweep.main([EXP, "--groups", "tok", "--fracs", "80", "--set", "seeds=2", "--root", str(tmp_path)])
  lines = capsys.readouterr().out.splitlines()
  assert lines == [shlex.join(["python", "-m", "dlgrok.main", f"--config={EXP}:none,f80,seeds=2",
                               f"--workdir={tmp_path}/mod97-none_f80"]),
                   shlex.join(["python", "-m", "dlgrok.main", f"--config={EXP}:tok,f80,baseline=false,seeds=2",
                               f"--workdir={tmp_path}/mod97-tok_f80"])]
  sweep.main([EXP, "--groups", "tok", "--fracs", "80", "--format", "slurm"])
  text = capsys.readouterr().out
  assert "#SBATCH --array=0-1" in text and text.count(" ;;") == 2
  done, stale = tmp_path / "mod97-none_f80", tmp_path / "mod97-tok_f80"
  for d in (done, stale):
    os.makedirs(d / "checkpoints")
    (d / "config.json").write_text(json.dumps({"steps": 100.0}))
  os.makedirs(done / "checkpoints" / "100")
  old = time.time() - 3600
  os.utime(stale / "checkpoints", (old, old))
  assert sweep.status(str(done)) == "done" and sweep.status(str(stale)) == "stopped"
  os.utime(stale / "checkpoints")
  assert sweep.status(str(stale)) == "running"
  assert sweep.status(str(tmp_path / "nothing")) == "not started"


def test_launch_dry_runs_golden():
  tpu = subprocess.run(["bash", os.path.join(ROOT, "launch", "tpu.sh"), "--name", "grok", "--zone", "us-central2-b",
                        "--repo", "https://example.org/me/dlgrok.git", "--type", "v4-32", "--create", "--dry-run",
                        "--", "--config=experiments/mod97.py:all,f80", "--workdir=gs://my-bucket/runs/all"],
                       capture_output=True, text=True, check=True).stdout
  ssh = "gcloud compute tpus tpu-vm ssh grok --zone=us-central2-b --worker=all --command"
  assert tpu.splitlines() == [
      "gcloud compute tpus tpu-vm create grok --zone=us-central2-b --accelerator-type=v4-32 "
      "--version=tpu-ubuntu2204-base",
      f"{ssh} \"(test -d dlgrok || git clone https://example.org/me/dlgrok.git dlgrok) && pip install -e "
      "'./dlgrok[tpu]'\"",
      f"{ssh} \"cd dlgrok && DLGROK_DISTRIBUTED=1 python -m dlgrok.main '--config=experiments/mod97.py:all,f80' "
      "'--workdir=gs://my-bucket/runs/all'\""]
  slurm = subprocess.run(["bash", SLURM_SH, "--nodes", "2", "--gpus-per-node", "4",
                          "--dry-run", "--", "--config=experiments/mod97.py:ffn", "--workdir=/shared/runs/ffn"],
                         capture_output=True, text=True, check=True).stdout
  assert slurm.splitlines() == [
      "#!/bin/bash", "#SBATCH --job-name=dlgrok", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4",
      "#SBATCH --gpus-per-task=1", "#SBATCH --time=24:00:00", "#SBATCH --requeue", "#SBATCH --signal=B:TERM@120",
      "export DLGROK_DISTRIBUTED=1",
      "set -- srun python -m dlgrok.main '--config=experiments/mod97.py:ffn' '--workdir=/shared/runs/ffn'",
      *sweep.SLURM_WRAPPER.splitlines(),  # the same shell code as the sweep's job array
      "# submit with: sbatch <this script>"]


def test_grid_script_skips_the_runs_whose_results_are_kept(tmp_path):
  kept = tmp_path / "kept"
  skipped = ("none", "attn", "ffn", "all", "out", "tok")
  for g in skipped:
    (kept / f"{g}_f80").mkdir(parents=True)
    (kept / f"{g}_f80" / "metrics.jsonl.gz").write_bytes(b"")
  env = dict(CLI_ENV, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"], GRID_SKIP=str(kept))
  run = subprocess.run(["bash", os.path.join(ROOT, "launch", "grid80_cpu.sh"), str(tmp_path / "runs"), "--dry_run"],
                       env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert run.returncode == 0, run.stderr[-2000:]
  lines = run.stdout.splitlines()
  assert lines[:6] == [f"{g}_f80: skipped, its results are in {kept}" for g in skipped]
  assert len(lines) == 7 and lines[6].startswith("15 models in 1 cohort (pos: 15); 10,000 steps")
  assert lines[6].endswith(f"workdir {tmp_path / 'runs'}/grid80/pos_f80 (dry run: nothing written)")


def batch_script(tmp_path, kind, tokens):
  """A batch script from the sweep (array task 0 trains the tiny config) or launch/slurm.sh; its path, workdir."""
  if kind == "sweep":
    grid = sweep.jobs(EXP, ["ffn"], ["80"], "r8", f"{TINY},{tokens}".split(","), str(tmp_path))
    text, workdir = sweep.slurm([shlex.join(cmd) for _, cmd in grid], EXP), grid[0][0]
    assert text.endswith(sweep.SLURM_WRAPPER)
  else:
    workdir = str(tmp_path / "run")
    text = subprocess.run(["bash", SLURM_SH, "--dry-run", "--", f"--config={EXP}:ffn,r8,f80,{TINY},{tokens}",
                           f"--workdir={workdir}"], capture_output=True, text=True, check=True).stdout
  path = tmp_path / "job.sbatch"
  path.write_text(text)
  return str(path), workdir


def fake_slurm_env(tmp_path):
  """The environment of a batch script with fake srun and scontrol first on PATH; also scontrol's log."""
  bin_dir, log = tmp_path / "bin", tmp_path / "scontrol.log"
  bin_dir.mkdir()
  # slurm.sh's script exports DLGROK_DISTRIBUTED=1 for a real cluster, where jax.distributed.initialize() finds
  # its peers through SLURM; here it would fail, so the fake srun runs the single process without it.
  (bin_dir / "srun").write_text('#!/bin/bash\nexec env DLGROK_DISTRIBUTED=0 "$@"\n')
  (bin_dir / "scontrol").write_text(f'#!/bin/bash\necho "$*" >> {shlex.quote(str(log))}\n')
  for f in bin_dir.iterdir():
    f.chmod(0o755)
  env = {k: v for k, v in CLI_ENV.items() if not k.startswith("SLURM_") and k != "DLGROK_DISTRIBUTED"}
  env.update(PATH=os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable), env["PATH"]]),
             JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", SLURM_JOB_ID="4242", SLURM_ARRAY_TASK_ID="0")
  return env, log


def saved_steps(workdir):
  ckdir = os.path.join(workdir, "checkpoints")
  return sorted(int(s) for s in os.listdir(ckdir) if s.isdigit()) if os.path.isdir(ckdir) else []


@pytest.mark.parametrize("kind", ["sweep", "launch"])
def test_batch_script_passes_sigterm_to_the_run_and_requeues(tmp_path, kind):
  script, workdir = batch_script(tmp_path, kind, "steps=100000,eval_points=6")
  env, log = fake_slurm_env(tmp_path)
  err_path = tmp_path / "stderr"
  with open(err_path, "w") as err:  # a new session, so that a failing test can kill the run too
    proc = subprocess.Popen(["bash", script], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                            start_new_session=True)
  watchdog = threading.Timer(240, os.killpg, (proc.pid, signal.SIGKILL))
  watchdog.start()
  try:
    for line in proc.stdout:
      if line.startswith("step ") and int(line.split()[1].split("/")[0]) > 0:
        proc.send_signal(signal.SIGTERM)  # the batch shell only, as --signal=B:TERM does
        break
    proc.stdout.read()
    proc.wait()
  finally:
    watchdog.cancel()
    try:
      os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
      pass
  err = err_path.read_text()
  assert proc.returncode == 143, err
  assert "interrupted by SIGTERM at step " in err
  assert saved_steps(workdir)[-1] > 0
  assert log.read_text().splitlines() == ["requeue 4242"]


def test_batch_script_does_not_requeue_a_finished_run(tmp_path):
  script, workdir = batch_script(tmp_path, "launch", "steps=5,eval_points=2")
  env, log = fake_slurm_env(tmp_path)
  done = subprocess.run(["bash", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
  assert done.returncode == 0, done.stderr
  assert saved_steps(workdir)[-1] == 5 and not log.exists()
