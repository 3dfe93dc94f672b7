"""Grokking MNIST (App. F, after Omnigrok): 784-200-200-10 ReLU MLP on the first 1000 training images, MSE on
one-hot targets, AdamW lr 1e-3 wd 0.01, batch 200, every initial parameter x8, 1e5 steps, 3 seeds, tested on
all 10000 test images; pixels in [0, 1] as Omnigrok's own code (ToTensor); a baseline cohort trains beside.

  python -m dlgrok.main --config=experiments/mnist_grok.py:l1      # Figure 25: layer 1 at 12.5/25/50/75/100 %
  python -m dlgrok.main --config=experiments/mnist_grok.py:l2      # Figure 26
  python -m dlgrok.main --config=experiments/mnist_grok.py:l3      # Figure 27
  python -m dlgrok.main --config=experiments/mnist_grok.py:l23     # Figure 28: layers 2+3 at 100 %
  python -m dlgrok.main --config=experiments/mnist_grok.py:l23,p100,seeds=1,steps=500 --workdir=/tmp/smoke

Groups: none l1 l2 l3 l23 all. Ranks: rN, pX (default 12.5/25/50/75/100 %; l23: 100 %). The split is fixed
(frac is recorded as the training share and cannot be chosen; change n_train=). Data: see dlgrok/data/mnist.py.
"""
from dlgrok import configs
from dlgrok.tasks import mnist

PAPER_PCTS = (12.5, 25, 50, 75, 100)


def paper_ranks(groups):
  return ((), (100,)) if groups == ("l23",) else ((), PAPER_PCTS)  # the paper ran layers 2+3 at 100 % only


def get_config(arg=""):
  c = configs.base(task="mnist_grok", width=200, init="torch", init_scale=8.0, n_train=1000, pixels="unit",
                   loss="mse", optimizer="adamw", lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01,
                   batch_size=200, steps=1e5, seeds=3, eval_chunk=2000)
  return configs.apply_arg(c, arg, mnist.TASK, paper_ranks)
