#!/usr/bin/env bash
# Submits a dlgrok job to a SLURM GPU cluster: one process per GPU through srun, models sharded over all GPUs.
#   launch/slurm.sh [--nodes N] [--gpus-per-node G] [--time HH:MM:SS] [--partition P] [--dry-run] -- MAIN_ARGS...
# MAIN_ARGS go to `python -m dlgrok.main`; the --workdir must be on a file system every node sees.
set -euo pipefail
nodes=1 gpus=1 time="24:00:00" partition="" dry=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) nodes="$2"; shift 2 ;;
    --gpus-per-node) gpus="$2"; shift 2 ;;
    --time) time="$2"; shift 2 ;;
    --partition) partition="$2"; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --) shift; break ;;
    *) echo "launch/slurm.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ $# -gt 0 ]] || { echo "usage: launch/slurm.sh [--nodes N] [--gpus-per-node G] [--dry-run] -- MAIN_ARGS..." >&2; exit 2; }
main_args=$(for a in "$@"; do printf '%s ' "${a@Q}"; done)
# A copy of dlgrok/sweep.py's SLURM_WRAPPER (tests/test_sweep.py checks that they match), so no Python is needed here.
wrapper=$(cat <<'EOF'
# SLURM sends SIGTERM to this shell 120 s before the time limit (--signal=B:TERM@120) and on preemption: pass it
# on to the run, which saves a checkpoint and exits 143 (130 on SIGINT), and requeue the job to resume from there.
trap 'kill -TERM $pid 2>/dev/null' TERM INT
"$@" & pid=$!
while kill -0 $pid 2>/dev/null; do wait $pid; done  # wait returns early when a trapped signal arrives
wait $pid; status=$?
if [[ $status == 143 || $status == 130 ]]; then scontrol requeue "$SLURM_JOB_ID"; fi
exit $status
EOF
)
script="#!/bin/bash
#SBATCH --job-name=dlgrok
#SBATCH --nodes=$nodes
#SBATCH --ntasks-per-node=$gpus
#SBATCH --gpus-per-task=1
#SBATCH --time=$time
#SBATCH --requeue
#SBATCH --signal=B:TERM@120${partition:+
#SBATCH --partition=$partition}
export DLGROK_DISTRIBUTED=1
set -- srun python -m dlgrok.main ${main_args% }
$wrapper"
if [[ $dry == 1 ]]; then
  echo "$script"
  echo "# submit with: sbatch <this script>"
else
  f=$(mktemp --suffix=.sbatch)
  echo "$script" > "$f"
  sbatch "$f"
fi
