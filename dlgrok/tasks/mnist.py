"""MNIST MLPs (App. E, F): 784-w-w-10 ReLU; the split is fixed (the first n_train training images, then the
test set)."""
from dlgrok import configs
from dlgrok.data import mnist
from dlgrok.models import mlp, transformer
from dlgrok.tasks import common

GROUPS = {"none": (), "l1": ("l1/kernel",), "l2": ("l2/kernel",), "l3": ("l3/kernel",),
          "l23": ("l2/kernel", "l3/kernel"), "all": ("l1/kernel", "l2/kernel", "l3/kernel")}


class MNIST(common.Task):
  name = "mnist"
  groups = GROUPS
  fixed_split = True

  def check(self, c):
    common.check_choice(c, "init", transformer.INITS)
    common.check_choice(c, "optimizer", common.OPTIMIZERS)
    if c.pixels not in mnist.PIXELS:
      raise configs.ConfigError(f"pixels={c.pixels!r}; allowed: {', '.join(mnist.PIXELS)}")

  def load(self, c):
    x, y = common.data_error(mnist.load, c.data_dir, c.n_train, c.pixels)
    common.check_fixed_frac(c, c.n_train / len(x))
    return common.Data(x=x, y=y, n_train=c.n_train)

  def model(self, c, model_words, data):
    return mlp.MLP(features=(c.width, c.width, 10), init_scheme=c.init)

  def steps(self, c):
    if "epochs" not in c:
      raise configs.ConfigError("steps=0 needs epochs=N for this experiment; pass steps=N")
    return common.epoch_steps(c)


TASK = MNIST()
