#!/usr/bin/env bash
# The grokking lab's comparison on one machine, 3 seeds (issue: remedies at their published recipes and on the
# paper's, side by side). Rerun it to continue: each run resumes from its newest checkpoint.
#   bash launch/lab_cpu.sh [ROOT] [flags for every run]   # workdirs ROOT/lab/<arm> (default ROOT: runs)
# 1. mod 97 ÷ at 80 %, 1e4 steps, the paper's model and recipe (AdamW, weight decay 0, warm-up from 0.1·lr): the
#    baseline, all layers decomposed at 100 %, grokfast-EMA, grokfast-MA, StableMax, ⊥Grad, both, weight decay 1.
# 2. The same data and budget, grokfast-EMA and -MA at grokfast's recipe (Adam with coupled L2 0.005 / 0.01, its
#    warm-up from 0) on the paper's model and on grokfast's pre-LN model.
# 3. Grokfast's own setting: 50 % data, 2e4 steps, its recipe, both models.
set -euo pipefail
root=${1:-runs}
shift || true
r=experiments/remedies.py
python -m dlgrok.main --config="$r:all,p100,grokfast_ema,grokfast_ma,stablemax,orthograd,stablemax+orthograd,decay,seeds=3" \
  --workdir="$root/lab/paper_f80" "$@"
python -m dlgrok.main --config="$r:preln,grokfast_ema+adam_l2+warm0,remedy_groups=true,baseline=false,decays=0.005,seeds=3" \
  --workdir="$root/lab/ema_published_f80" "$@"
python -m dlgrok.main --config="$r:preln,grokfast_ma+adam_l2+warm0,remedy_groups=true,baseline=false,decays=0.01,seeds=3" \
  --workdir="$root/lab/ma_published_f80" "$@"
python -m dlgrok.main --config="$r:preln,grokfast_ema+adam_l2+warm0,f50,remedy_groups=true,baseline=false,decays=0.005,seeds=3,steps=20000" \
  --workdir="$root/lab/ema_published_f50" "$@"
