"""Expands a paper grid into jobs, one `python -m dlgrok.main` command each, and reports their status.

  python -m dlgrok.sweep experiments/mod97.py --groups tok,pos,attn,ffn,out,all --fracs 50,65,80
  python -m dlgrok.sweep experiments/mod97.py --format slurm > jobs.sbatch
  python -m dlgrok.sweep experiments/mod97.py --status

One job per (group, fraction) with baseline=false, plus one baseline job per fraction, so each baseline trains
once; inside a job every rank and seed stays one vmapped cohort. The paper's main grid (baseline + 6 groups x
5 ranks = 31 configurations, x 3 fractions) is 21 jobs.
"""
import json
import os
import shlex
import sys
import time

from dlgrok import checkpoint, configs, inputs, metrics, run_config, workdir as wd

PAPER_GROUPS = "tok,pos,attn,ffn,out,all"
RUNNING_MINUTES = 15  # a job whose checkpoints or metrics changed this recently counts as running
# The end of a SLURM batch script, after `set -- COMMAND...`; launch/slurm.sh holds a copy (a test keeps the two
# identical) so that it needs no Python to write its script.
SLURM_WRAPPER = """\
# SLURM sends SIGTERM to this shell 120 s before the time limit (--signal=B:TERM@120) and on preemption: pass it
# on to the run, which saves a checkpoint and exits 143 (130 on SIGINT), and requeue the job to resume from there.
trap 'kill -TERM $pid 2>/dev/null' TERM INT
"$@" & pid=$!
while kill -0 $pid 2>/dev/null; do wait $pid; done  # wait returns early when a trapped signal arrives
wait $pid; status=$?
if [[ $status == 143 || $status == 130 ]]; then scontrol requeue "$SLURM_JOB_ID"; fi
exit $status
"""


def jobs(experiment, groups, fracs, ranks="paper", extra=(), root="runs"):
  """[(workdir, argv)] for the grid; `ranks` 'paper' = each group's default rank list, else rank tokens."""
  name = os.path.splitext(os.path.basename(experiment))[0]
  out = []
  for frac in fracs:
    for group in ["none"] + list(groups):
      tokens = [group, f"f{frac}"] + ([] if ranks == "paper" or group == "none" else ranks.split(","))
      tokens += [] if group == "none" else ["baseline=false"]
      tokens += list(extra)
      arg = ",".join(tokens)
      workdir = wd.join(root, f"{name}-{group}_f{frac}")
      out.append((workdir, ["python", "-m", "dlgrok.main", f"--config={experiment}:{arg}", f"--workdir={workdir}"]))
  return out


def check(grid, root):
  """Builds every job's config as dlgrok.main would (tokens and values checked; nothing loaded or written), so
  that a bad --groups, --fracs, --ranks or --set fails here, in one line naming the job, not in every job."""
  if wd.exists(root) and not wd.isdir(root):
    raise inputs.InputError(f"--root {root!r} is a file, not a directory")
  for workdir, argv in grid:
    path, _, arg = argv[3].split("=", 1)[1].partition(":")
    try:
      configs.check_common(configs.load(path, arg))
    except configs.ConfigError as e:
      raise configs.ConfigError(f"job {workdir} ({arg}): {e}") from None


def status(workdir, now=None):
  """'done', 'running', 'stopped' (some progress, nothing recent) or 'not started'."""
  now = now or time.time()
  if not wd.exists(run_config.path(workdir)):
    return "not started"
  steps = int(run_config.read(workdir, need="steps")["steps"])
  ckdir = checkpoint.directory(workdir)
  saved = [int(s) for s in wd.listdir(ckdir) if s.isdigit()] if wd.isdir(ckdir) else []
  if saved and max(saved) >= steps:
    return "done"
  paths = [metrics.path(workdir), ckdir]  # a bucket's folder has no time: its metrics.jsonl's counts
  latest = max((wd.mtime(p) for p in paths if wd.exists(p)), default=0)
  return "running" if now - latest < 60 * RUNNING_MINUTES else "stopped"


def slurm(lines, experiment):
  """A SLURM job-array script: one array task per line, one GPU each."""
  body = "\n".join(f"  {i}) set -- {line} ;;" for i, line in enumerate(lines))
  return f"""#!/bin/bash
#SBATCH --job-name=dlgrok-{os.path.splitext(os.path.basename(experiment))[0]}
#SBATCH --array=0-{len(lines) - 1}
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --signal=B:TERM@120
case $SLURM_ARRAY_TASK_ID in
{body}
esac
""" + SLURM_WRAPPER


def main(argv=None):
  ap = inputs.Parser(prog="python -m dlgrok.sweep", description=__doc__.split("\n")[0])
  ap.add_argument("experiment", help="experiments/<family>.py")
  ap.add_argument("--groups", default=PAPER_GROUPS)
  ap.add_argument("--fracs", default="50,65,80")
  ap.add_argument("--ranks", default="paper", help="'paper' or rank tokens such as r16,r32")
  ap.add_argument("--set", default="", help="extra key=value tokens for every job, e.g. seeds=3")
  ap.add_argument("--root", default="runs")
  ap.add_argument("--format", choices=("lines", "slurm", "json"), default="lines")
  ap.add_argument("--status", action="store_true", help="say which jobs are done, running or not started")
  a = ap.parse_args(argv)
  grid = jobs(a.experiment, a.groups.split(","), a.fracs.split(","), a.ranks,
              [t for t in a.set.split(",") if t], a.root)
  check(grid, a.root)
  lines = [shlex.join(cmd) for _, cmd in grid]
  if a.status:
    counts = {}
    for workdir, _ in grid:
      st = status(workdir)
      counts[st] = counts.get(st, 0) + 1
      print(f"{st:12s} {workdir}")
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
  elif a.format == "slurm":
    sys.stdout.write(slurm(lines, a.experiment))
  elif a.format == "json":
    json.dump([{"workdir": w, "argv": c} for w, c in grid], sys.stdout, indent=1)
    print()
  else:
    print("\n".join(lines))


if __name__ == "__main__":
  inputs.cli(main)
