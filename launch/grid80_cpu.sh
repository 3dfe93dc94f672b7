#!/usr/bin/env bash
# The paper's mod-97 grid at 80 % data (Figures 3-8 c) on one machine, 3 seeds, 1e4 steps: the baseline, then
# each layer group at its five ranks, one run after another. Rerun it to continue: each run resumes from its
# newest checkpoint, and a finished one returns at once, writing nothing. Flags after ROOT go to every run
# (e.g. --dry_run). On a machine without the earlier workdirs, GRID_SKIP=results/mod97_f80 skips the runs whose
# results that folder already holds (<group>_f80/metrics.jsonl.gz), instead of training them again.
#   bash launch/grid80_cpu.sh [ROOT [FLAGS...]]      # workdirs ROOT/grid80/<group>_f80 (default ROOT: runs)
# Then `bash launch/grid80_results.sh [ROOT]` copies them into results/mod97_f80 and draws the figures and tables.
set -euo pipefail
root=${1:-runs}
shift || true
for g in none attn ffn all out tok pos; do
  if [ -n "${GRID_SKIP:-}" ] && [ -f "$GRID_SKIP/${g}_f80/metrics.jsonl.gz" ]; then
    echo "${g}_f80: skipped, its results are in $GRID_SKIP"
    continue
  fi
  own=$([ "$g" = none ] || echo ",baseline=false")  # a layer group's run leaves the baseline to none's
  python -m dlgrok.main --config="experiments/mod97.py:$g,f80,seeds=3$own" --workdir="$root/grid80/${g}_f80" "$@"
done
