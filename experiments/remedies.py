"""Decomposed learning beside the other remedies for grokking, on the paper's mod-97 model (experiments/mod97.py's
settings; 80 % training data and 1e4 steps unless an fX token says otherwise).

  python -m dlgrok.main --config=experiments/remedies.py:all,p100,usv,uv,diag,grokfast_ema,stablemax+orthograd,decay,seeds=2
  python -m dlgrok.plot runs/remedies-all_p100_usv_uv_diag_grokfast_ema_stablemax+orthograd_decay_seeds=2 --compare

That first command is the CPU result in results/remedies_f80/: the baseline; all layers decomposed at 100 % as
U S Vt (usv), as two factors (uv) and with S kept diagonal (diag); the baseline with grokfast-EMA (alpha 0.98,
lambda 2), with StableMax cross-entropy and ⊥Grad, and with weight decay 1.0; every arm its own cohort.

Words besides mod97.py's: factorisations usv uv diag s (U and Vt frozen); remedy sets grokfast_ema, grokfast_ma,
stablemax, orthograd, decay (AdamW weight decay `decays`), joined by + to combine; remedy_groups=true puts the
remedies on the decomposed models too. Two words change the optimiser recipe of their cohort: adam_l2 (PyTorch's
Adam with weight decay `decays` added to the gradient, coupled L2, instead of AdamW) and warm0 (grokfast's
warm-up, lr * k / 10 from 0 over 10 steps, instead of the paper's 0.1 * lr -> lr over 9). The model word preln is
grokfast's pre-LN block without output bias. Grokfast as published (github ironjr/grokfast: Adam, weight decay
0.005 for EMA and 0.01 for MA, its warm-up, 50 % data, pre-LN, and its data: x * y mod 97 with y != 0, op=x*y and
nonzero_y=true) beside the same arm on the paper's post-LN model and the pre-LN model without a remedy:
  python -m dlgrok.main --config=experiments/remedies.py:preln,grokfast_ema+adam_l2+warm0,f50,op=x*y,nonzero_y=true,seeds=3,steps=20000,remedy_groups=true,baseline=false,decays=0.005
x * y is not x / y relabelled (the token table serves x and y alike, and x * y is symmetric): the same recipe
groks sooner on it (results/remedies_f80/README.md). Per-model sweeps in one cohort: ema_alphas, ema_lambs,
ma_windows, ma_lambs, decays, weight decays (wdX), fractions (several fX: each model its own split; then give
steps=N).
  python -m dlgrok.main --config=experiments/remedies.py:grokfast_ema,seeds=3 --config.ema_alphas=0.8,0.9,0.98
"""
import os

from dlgrok import configs


def get_config(arg=""):
  tokens = configs.split_tokens(arg)
  if not any(configs.FRAC_TOKEN.fullmatch(t) for t in tokens):
    tokens.append("f80")
  c = configs.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "mod97.py"), ",".join(tokens))
  c.task = "mod97"
  return c
