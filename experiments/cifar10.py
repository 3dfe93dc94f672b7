"""CIFAR-10 ViT (App. G.2): 6 blocks x 128, 4 heads, MLP x2, patch 4, dropout 0.1 (827,530 parameters); batch
128, Adam lr 5e-4 with 10 warm-up epochs then cosine to 1e-5 (100 epochs); random crop (pad 4), horizontal flip,
RandAugment (2 ops, magnitude 9), per-channel normalisation; 3 seeds; a baseline cohort trains beside.

  python -m dlgrok.main --config=experiments/cifar10.py:all                   # Figure 31 (all: paper +2.97 %)
  python -m dlgrok.main --config=experiments/cifar10.py:all_but_fc1_out       # Figure 32
  python -m dlgrok.main --config=experiments/cifar10.py:qkv,p100,seeds=1,epochs=2,n_train=5000 --workdir=/tmp/x

Groups: none patch pos qkv proj attn fc1 fc2 ffn pre out all all_but_fc1_out. Ranks: rN, pX (default
12.5/25/50/75/100 %). The split is fixed (the first n_train training images, then the 10000 test images); test
accuracy at every epoch (eval_points=100). Data: cifar-10-batches-py in data_dir, else $DLGROK_DATA/cifar10,
../shared/data/cifar10, ~/data/cifar10; download=true fetches it when online.
"""
from dlgrok import configs, tasks


def get_config(arg=""):
  return configs.apply_arg(tasks.cifar_config(), arg, tasks.get("cifar10").words())
