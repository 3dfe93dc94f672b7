#!/usr/bin/env bash
# The grokking lab's comparison on one machine, 3 seeds (issue: remedies at their published recipes and on the
# paper's, side by side). Rerun it to continue: each run resumes from its newest checkpoint.
#   bash launch/lab_cpu.sh [ROOT] [flags for every run]   # workdirs ROOT/lab/<arm> (default ROOT: runs)
# 1. mod 97 ÷ at 80 %, 1e4 steps, the paper's model and recipe (AdamW, weight decay 0, warm-up from 0.1·lr): the
#    baseline, all layers decomposed at 100 %, grokfast-EMA, grokfast-MA, StableMax, ⊥Grad, both, weight decay 1.
# 2. The same data and budget, grokfast-EMA and -MA at grokfast's recipe (Adam with coupled L2 0.005 / 0.01, its
#    warm-up from 0) on the paper's model and on grokfast's pre-LN model; beside them the same recipe without the
#    filter (grokfast's own baseline has neither filter nor L2, so its speed-up alone cannot say which one works).
# 3. Grokfast's own setting: its data (x·y mod 97, y ≠ 0) at 50 %, 2e4 steps, its recipe with and without the
#    filter, both models.
# 4. StableMax and ⊥Grad at their authors' recipe (Prieto et al. 2025, the transformer runs of their
#    run_main_experiments.sh): 40 % data, full batch, AdamW at constant lr 1e-3, beta2 0.99, eps 1e-25, weight
#    decay 0, 5000 steps; on the paper's model (theirs has one layer).
set -euo pipefail
root=${1:-runs}
shift || true
r=experiments/remedies.py
python -m dlgrok.main --config="$r:all,p100,grokfast_ema,grokfast_ma,stablemax,orthograd,stablemax+orthograd,decay,seeds=3" \
  --workdir="$root/lab/paper_f80" "$@"
python -m dlgrok.main --config="$r:preln,adam_l2+warm0,grokfast_ema+adam_l2+warm0,remedy_groups=true,baseline=false,decays=0.005,seeds=3" \
  --workdir="$root/lab/ema_published_f80" "$@"
python -m dlgrok.main --config="$r:preln,adam_l2+warm0,grokfast_ma+adam_l2+warm0,remedy_groups=true,baseline=false,decays=0.01,seeds=3" \
  --workdir="$root/lab/ma_published_f80" "$@"
python -m dlgrok.main --config="$r:preln,adam_l2+warm0,grokfast_ema+adam_l2+warm0,f50,op=x*y,nonzero_y=true,remedy_groups=true,baseline=false,decays=0.005,seeds=3,steps=20000" \
  --workdir="$root/lab/ema_published_f50" "$@"
python -m dlgrok.main --config="$r:stablemax,orthograd,stablemax+orthograd,f40,seeds=3,steps=5000,batch_size=3724,lr=1e-3,b2=0.99,eps=1e-25,warmup_start=1" \
  --workdir="$root/lab/prieto_f40" "$@"
