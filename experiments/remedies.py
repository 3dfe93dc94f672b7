"""Decomposed learning beside the other remedies for grokking, on the paper's mod-97 model (experiments/mod97.py's
settings; 80 % training data and 1e4 steps unless an fX token says otherwise).

  python -m dlgrok.main --config=experiments/remedies.py:all,p100,usv,uv,diag,grokfast_ema,stablemax+orthograd,decay,seeds=2
  python -m dlgrok.plot runs/remedies-all_p100_usv_uv_diag_grokfast_ema_stablemax+orthograd_decay_seeds=2 --compare

That first command is the CPU result in results/remedies_f80/: the baseline; all layers decomposed at 100 % as
U S Vt (usv), as two factors (uv) and with S kept diagonal (diag); the baseline with grokfast-EMA (alpha 0.98,
lambda 2), with StableMax cross-entropy and ⊥Grad, and with weight decay 1.0; every arm its own cohort.

Words besides mod97.py's: factorisations usv uv diag s (U and Vt frozen); remedy sets grokfast_ema, grokfast_ma,
stablemax, orthograd, decay (weight decay `decays`), joined by + to combine; remedy_groups=true puts the remedies
on the decomposed models too. Per-model sweeps in one cohort: ema_alphas, ema_lambs, ma_windows, ma_lambs,
decays, weight decays (wdX), fractions (several fX: each model its own split; then give steps=N).
  python -m dlgrok.main --config=experiments/remedies.py:grokfast_ema,seeds=3 --config.ema_alphas=0.8,0.9,0.98
"""
import os
import re

from dlgrok import configs


def get_config(arg=""):
  tokens = configs.split_tokens(arg)
  if not any(re.fullmatch(r"f[0-9.eE+-]+", t) for t in tokens):
    tokens.append("f80")
  c = configs.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "mod97.py"), ",".join(tokens))
  c.task = "mod97"
  return c
