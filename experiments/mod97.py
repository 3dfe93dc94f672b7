"""Grokking x/y mod 97 (paper §4-5, Figures 3-15): a baseline cohort beside a decomposed one, 5 seeds.

  python -m dlgrok.main --config=experiments/mod97.py:ffn,r32 --workdir=runs/ffn-r32
  python -m dlgrok.main --config=experiments/mod97.py:all,f80            # Figures 3-8 c: five ranks, 80 % data
  python -m dlgrok.main --config=experiments/mod97.py:tok,p50,f65,seeds=3 --config.eval_points=100

Groups: none tok pos attn qkv proj ffn fc1 fc2 out all nopos. Ranks: rN, pX (default: the paper's five).
The model is danielmamay/grokking's (2 post-LN blocks of width 128, 4 heads, PyTorch's initialisation); AdamW
lr 1e-3, betas (0.9, 0.98), 10-step linear warm-up from 0.1 lr, batch 512; 9312 examples (x in 0..96, y in
1..96); f50/f65/f80 train 1e6/1e5/1e4 steps unless steps= is given; ~200 log-spaced evaluations (fewer in
short runs: at most 10 % of the training FLOPs).
"""
from dlgrok import configs
from dlgrok.tasks import modp

PAPER_PCTS = (12.5, 25, 50, 75, 100)  # Tables 1-2: each layer's rank as a percent of its own full rank
POS_RANKS = (1, 2, 3, 4, 5)  # the 5-row position table, by the paper's absolute list


def paper_ranks(groups):
  return (POS_RANKS, ()) if groups == ("pos",) else ((), PAPER_PCTS)


def get_config(arg=""):
  c = configs.base(task="mod97", p=97, op="x/y", nonzero_y=False, width=128, heads=4, layers=2, init="torch",
                   optimizer="adamw", lr=1e-3, b1=0.9, b2=0.98, eps=1e-8, weight_decay=0.0, warmup_steps=9,
                   warmup_start=0.1, batch_size=512, seeds=5, frac=0.5,
                   steps_by_frac={"f50": 1e6, "f65": 1e5, "f80": 1e4})
  return configs.apply_arg(c, arg, modp.TASK, paper_ranks)
