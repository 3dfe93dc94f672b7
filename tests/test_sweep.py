import importlib.util
import json
import os
import shlex
import subprocess
import time

from conftest import ROOT
from dlgrok import cohorts, sweep

EXP = os.path.join(ROOT, "experiments", "mod97.py")


def get_config(arg):
  spec = importlib.util.spec_from_file_location("mod97", EXP)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


def test_paper_grid_jobs_parse_and_cover_31_configurations_per_fraction():
  grid = sweep.jobs(EXP, sweep.PAPER_GROUPS.split(","), ["50", "65", "80"])
  assert len(grid) == 21 and len({w for w, _ in grid}) == 21
  configs = 0
  for workdir, argv in grid:
    assert argv[:3] == ["python", "-m", "dlgrok.main"] and argv[4] == f"--workdir={workdir}"
    arg = argv[3].split(":", 1)[1]
    task, config = cohorts.resolve(get_config(arg))
    planned = cohorts.plan(config, task)
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
                        "--", "--config=experiments/mod97.py:all,f80", "--workdir=/mnt/runs/all"],
                       capture_output=True, text=True, check=True).stdout
  ssh = "gcloud compute tpus tpu-vm ssh grok --zone=us-central2-b --worker=all --command"
  assert tpu.splitlines() == [
      "gcloud compute tpus tpu-vm create grok --zone=us-central2-b --accelerator-type=v4-32 "
      "--version=tpu-ubuntu2204-base",
      f"{ssh} \"pip install -U 'jax[tpu]' && (test -d dlgrok || git clone https://example.org/me/dlgrok.git dlgrok)"
      " && pip install -e ./dlgrok\"",
      f"{ssh} \"cd dlgrok && DLGROK_DISTRIBUTED=1 python -m dlgrok.main '--config=experiments/mod97.py:all,f80' "
      "'--workdir=/mnt/runs/all'\""]
  slurm = subprocess.run(["bash", os.path.join(ROOT, "launch", "slurm.sh"), "--nodes", "2", "--gpus-per-node", "4",
                          "--dry-run", "--", "--config=experiments/mod97.py:ffn", "--workdir=/shared/runs/ffn"],
                         capture_output=True, text=True, check=True).stdout
  assert slurm.splitlines() == [
      "#!/bin/bash", "#SBATCH --job-name=dlgrok", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4",
      "#SBATCH --gpus-per-task=1", "#SBATCH --time=24:00:00", "#SBATCH --requeue", "#SBATCH --signal=B:TERM@120",
      "# dlgrok saves a checkpoint on SIGTERM (sent 120 s before the time limit) and resumes when requeued.",
      "export DLGROK_DISTRIBUTED=1",
      "srun python -m dlgrok.main '--config=experiments/mod97.py:ffn' '--workdir=/shared/runs/ffn'",
      "# submit with: sbatch <this script>"]
