"""Grokking x/y mod 97 (paper §4-5): a baseline cohort beside a decomposed one.

  python -m dlgrok.main --config=experiments/mod97.py:ffn,r32 --workdir=runs/ffn-r32
  python -m dlgrok.main --config=experiments/mod97.py:all,f80            # the paper's five ranks, 80 % data
  python -m dlgrok.main --config=experiments/mod97.py:tok,p50,f65,seeds=3 --config.eval_points=100

Groups: none tok pos attn qkv proj ffn fc1 fc2 out all nopos. Ranks: rN, pX (default: the paper's five).
Train fractions f50/f65/f80 run 1e6/1e5/1e4 steps unless steps= is given.
"""
from dlgrok import configs, tasks


def get_config(arg=""):
  return configs.apply_arg(tasks.mod_p_config(), arg, tasks.get("mod97").words())
