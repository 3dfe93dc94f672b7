"""Weight decay and decomposed learning on MNIST (App. E, Figure 24): 784-256-256-10 ReLU MLP, SGD lr 1e-3
momentum 0.9, batch 256, 25 epochs over the 60000 training images, cross-entropy (the paper names no loss);
weight decay 0, 1, 0.1, 0.01, 0.001, 1e-4 x ranks 10..100 % x 10 seeds in one cohort (600 models) beside a
baseline cohort (6 wds x 10 seeds). Pixels scaled to [-1, 1] (torchvision's Normalize((0.5,), (0.5,))): with
[0, 1] our baselines were ~1 point below the paper's (10.8 at weight decay 0.1), with [-1, 1] every one lands
within ~0.17 points of it, 3 seeds (results/mnist_wd/README.md).

  python -m dlgrok.main --config=experiments/mnist_wd.py:l1        # Figure 24a (l2: 24b, l3: 24c)
  python -m dlgrok.main --config=experiments/mnist_wd.py:all       # Figure 24d
  python -m dlgrok.main --config=experiments/mnist_wd.py:all,p40,wd0,wd0.01,seeds=3
  python -m dlgrok.plot runs/mnist_wd-l1 runs/mnist_wd-l2 runs/mnist_wd-l3 runs/mnist_wd-all

Groups: none l1 l2 l3 all. Ranks: rN, pX (default p10..p100). wdX tokens choose the weight decays. Metrics
rows carry weight_decay and the trained / inference / dense parameter counts; the best test accuracy is the
maximum over the evaluation points (eval_points=50, log-spaced; eval_points=25,eval_spacing=linear: every epoch).
"""
from dlgrok import configs
from dlgrok.tasks import mnist

TENTHS = tuple(10.0 * i for i in range(1, 11))


def get_config(arg=""):
  c = configs.base(task="mnist_wd", width=256, init="torch", n_train=60000, pixels="symmetric", loss="xent",
                   optimizer="sgd", lr=1e-3, momentum=0.9, weight_decays=(0.0, 1.0, 0.1, 0.01, 0.001, 0.0001),
                   batch_size=256, epochs=25, seeds=10, eval_points=50, eval_chunk=2000)
  return configs.apply_arg(c, arg, mnist.TASK, lambda groups: ((), TENTHS))
