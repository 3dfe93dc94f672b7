"""MNIST MLPs (App. E, F): 784-w-w-10 ReLU; the split is fixed (the first n_train training images, then the
test set)."""
from dlgrok import configs
from dlgrok.data import mnist
from dlgrok.models import mlp, transformer
from dlgrok.tasks import common

GROUPS = {"none": (), "l1": ("l1/kernel",), "l2": ("l2/kernel",), "l3": ("l3/kernel",),
          "l23": ("l2/kernel", "l3/kernel"), "all": ("l1/kernel", "l2/kernel", "l3/kernel")}


def check(c):
  common.check_choice(c, "init", transformer.INITS)
  common.check_choice(c, "optimizer", common.OPTIMIZERS)
  if c.pixels not in mnist.PIXELS:
    raise configs.ConfigError(f"pixels={c.pixels!r}; allowed: {', '.join(mnist.PIXELS)}")


def load(c):
  x, y = common.data_error(mnist.load, c.data_dir, c.n_train, c.pixels)
  common.check_fixed_frac(c, c.n_train / len(x))
  return common.Data(x=x, y=y, n_train=c.n_train)


def model(c, variants, data):
  return mlp.MLP(features=(c.width, c.width, 10), init_scheme=c.init)


def steps(c):
  if "epochs" not in c:
    raise configs.ConfigError("steps=0 needs epochs=N for this experiment; pass steps=N")
  return common.epoch_steps(c)


TASK = common.Task(name="mnist", groups=GROUPS, variants=(), check=check, load=load, model=model,
                   loss=common.loss_of, optimizer=common.constant_lr_optimizer, steps=steps,
                   split=common.fixed_split)
