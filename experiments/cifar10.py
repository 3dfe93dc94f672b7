"""CIFAR-10 ViT (App. G.2, Figures 31-32): 6 blocks x 128, 4 heads, MLP x2, patch 4, dropout 0.1 (827,530
parameters); batch 128, Adam lr 5e-4 with 10 warm-up epochs then cosine to 1e-5 (100 epochs); random crop
(pad 4), horizontal flip, RandAugment (2 ops, magnitude 9), per-channel normalisation; 3 seeds; a baseline cohort
trains beside.

  python -m dlgrok.main --config=experiments/cifar10.py:all                   # Figure 31 (all: paper +2.97 %)
  python -m dlgrok.main --config=experiments/cifar10.py:all_but_fc1_out       # Figure 32
  python -m dlgrok.main --config=experiments/cifar10.py:qkv,p100,seeds=1,epochs=2,n_train=5000 --workdir=/tmp/x

Groups: none patch pos qkv proj attn fc1 fc2 ffn pre out all all_but_fc1_out. Ranks: rN, pX (default
12.5/25/50/75/100 %). The split is fixed (the first n_train training images, then the 10000 test images); test
accuracy at every epoch (eval_points=100). Data: cifar-10-batches-py in data_dir, else $DLGROK_DATA/cifar10,
../shared/data/cifar10, ~/data/cifar10; download=true fetches it when online.
"""
from dlgrok import configs
from dlgrok.tasks import cifar10

PAPER_PCTS = (12.5, 25, 50, 75, 100)


def get_config(arg=""):
  c = configs.base(task="cifar10", width=128, heads=4, layers=6, mlp_ratio=2, patch=4, dropout=0.1,
                   optimizer="adamw", lr=5e-4, end_lr=1e-5, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
                   batch_size=128, epochs=100, warmup_epochs=10, n_train=50000, download=False, seeds=3,
                   eval_points=100, eval_spacing="linear", eval_chunk=1000)
  return configs.apply_arg(c, arg, cifar10.TASK, lambda groups: ((), PAPER_PCTS))
