"""Grokking x/y mod 59 (supplement §1): 3422 examples, 65 % / 80 % train data for 1e6 / 3e5 steps.

  python -m dlgrok.main --config=experiments/mod59.py:tok,f80
  python -m dlgrok.main --config=experiments/mod59.py:all,f65,seeds=5

Ranks default to 12.5/25/50/75/100 % of each layer (tok/out: 8, 15, 31, 46, 61; pos: 1..5).
"""
from dlgrok import configs, tasks


def get_config(arg=""):
  c = tasks.mod_p_config(task="mod59", p=59, frac=0.8)
  return configs.apply_arg(c, arg, tasks.get("mod59").words())
