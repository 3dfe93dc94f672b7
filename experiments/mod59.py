"""Grokking x/y mod 59 (supplement §1): 3422 examples, 65 % / 80 % train data for 1e6 / 3e5 steps; the mod-97
paper model and optimiser otherwise (see experiments/mod97.py).

  python -m dlgrok.main --config=experiments/mod59.py:tok,f80
  python -m dlgrok.main --config=experiments/mod59.py:all,f65,seeds=5

Ranks default to 12.5/25/50/75/100 % of each layer (tok/out: 8, 15, 31, 46, 61; pos: 1..5).
"""
from dlgrok import configs
from dlgrok.tasks import modp

PAPER_PCTS = (12.5, 25, 50, 75, 100)
POS_RANKS = (1, 2, 3, 4, 5)


def paper_ranks(groups):
  return (POS_RANKS, ()) if groups == ("pos",) else ((), PAPER_PCTS)


def get_config(arg=""):
  c = configs.base(task="mod59", p=59, op="x/y", nonzero_y=False, width=128, heads=4, layers=2, init="torch",
                   optimizer="adamw", lr=1e-3, b1=0.9, b2=0.98, eps=1e-8, weight_decay=0.0, warmup_steps=9,
                   warmup_start=0.1, batch_size=512, seeds=5, frac=0.8, steps_by_frac={"f65": 1e6, "f80": 3e5})
  return configs.apply_arg(c, arg, modp.TASK, paper_ranks)
