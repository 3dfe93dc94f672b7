"""Weight decay and decomposed learning on MNIST (App. E): 784-256-256-10 ReLU MLP, SGD lr 1e-3 momentum 0.9,
batch 256, 25 epochs over the 60000 training images, cross-entropy; weight decay 0, 1, 0.1, 0.01, 0.001, 1e-4
x ranks 10..100 % x 10 seeds in one cohort (600 models) beside a baseline cohort (6 wds x 10 seeds).

  python -m dlgrok.main --config=experiments/mnist_wd.py:l1        # Figure 24a (l2: 24b, l3: 24c)
  python -m dlgrok.main --config=experiments/mnist_wd.py:all       # Figure 24d
  python -m dlgrok.main --config=experiments/mnist_wd.py:all,p40,wd0,wd0.01,seeds=3
  python -m dlgrok.plot runs/mnist_wd-l1 runs/mnist_wd-l2 runs/mnist_wd-l3 runs/mnist_wd-all

Groups: none l1 l2 l3 all. Ranks: rN, pX (default p10..p100). wdX tokens (or weight_decays=) choose the
weight decays. Metrics rows carry weight_decay and the trained / inference / dense parameter counts; the best
test accuracy is the maximum over the evaluation points (eval_points=50, log-spaced).
"""
from dlgrok import configs, tasks


def get_config(arg=""):
  return configs.apply_arg(tasks.mnist_wd_config(), arg, tasks.get("mnist_wd").words())
