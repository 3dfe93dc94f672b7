"""Tiny Shakespeare character GPT (App. G.1): karpathy's lecture model (6 blocks x 384, 6 heads, block 256,
dropout 0.2, 10,788,929 parameters), batch 64 random windows, Adam lr 3e-4, 5000 steps; trained on the first
10/50/90 % of the text (f10/f50/f90, default f90), tested on the rest; 3 seeds; a baseline cohort trains beside.

  python -m dlgrok.main --config=experiments/shakespeare.py:f90                   # the baseline (paper: 58.14 %)
  python -m dlgrok.main --config=experiments/shakespeare.py:all,p50,f90           # paper: 57.997 %, ratio 0.7215
  python -m dlgrok.main --config=experiments/shakespeare.py:qkv,f10               # 12.5/25/50/75/100 %
  python -m dlgrok.plot runs/shakespeare-*                                        # Figures 29-30 heat maps

Groups: none pos tok qkv (every head's query/key/value) proj attn fc1 fc2 ffn out all. Ranks: rN, pX (default
12.5/25/50/75/100 % of each layer's full rank). Evaluation: next-character accuracy over every 256-character
block of each split, at eval_points=10 equal intervals; rows carry gap (train - test accuracy) and compression
(trained / dense parameters). dropout_site=qkv moves the attention dropout from the softmax onto q, k, v.
Data: input.txt in data_dir, else $DLGROK_DATA/tinyshakespeare, ../shared/data/tinyshakespeare, ~/data/...
"""
from dlgrok import configs
from dlgrok.tasks import shakespeare

PAPER_PCTS = (12.5, 25, 50, 75, 100)


def get_config(arg=""):
  c = configs.base(task="shakespeare", width=384, heads=6, layers=6, block=256, dropout=0.2, dropout_site="probs",
                   optimizer="adamw", lr=3e-4, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, batch_size=64,
                   steps=5000.0, seeds=3, frac=0.9, eval_points=10, eval_spacing="linear", eval_chunk=32)
  return configs.apply_arg(c, arg, shakespeare.TASK, lambda groups: ((), PAPER_PCTS))
