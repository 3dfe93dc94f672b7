"""What every task family shares: the Task base class, the data record, losses, optimisers, batch drawing."""
import abc
import dataclasses
import math

import jax
import jax.numpy as jnp
import optax

from dlgrok import configs, remedies
from dlgrok.data import files


@dataclasses.dataclass(frozen=True)
class Data:
  """The whole data set as arrays; each model draws its own train/test split of `n_train` examples."""
  x: object
  y: object
  n_train: int
  frac: float | None = None  # the training share to record, when it is not n_train / len(y)
  stream: object = None  # a token stream that training batches are drawn from (Tiny Shakespeare)
  stream_train: int = 0  # training draws read only stream[:stream_train]
  vocab: int = 0  # distinct tokens of a text (Tiny Shakespeare's model needs it)


class Task(abc.ABC):
  """A task family: a subclass per family gives its data and model and overrides what differs from these
  defaults (models split the examples at random, train on batches of them by index, and are scored by argmax
  accuracy). The numbers (paper settings) come from the config."""
  name: str
  groups: dict  # group word -> path regexes of the leaves it factorises
  model_words: tuple = ()  # words that change the model itself rather than factorise it
  fixed_split = False  # every model trains on the first n_train examples and tests on the rest
  per_model_fraction = False  # each model may have its own training fraction: n_train() gives its examples

  def check(self, c):
    """Raises ConfigError for a bad config value, before any data is read."""

  @abc.abstractmethod
  def load(self, c):
    """The data set (Data); ConfigError for missing or unfit data."""

  @abc.abstractmethod
  def model(self, c, model_words, data):
    """The flax module for the model words `model_words`."""

  def loss(self, c, name=None):
    """(logits, labels) -> per-example loss: `name`, or the config's `loss`."""
    return loss_of(c, name)

  def optimizer(self, c, weight_decay):
    """The optax transformation at the config's constant learning rate."""
    return optimizer(c, weight_decay, c.lr)

  def steps(self, c):
    """The step count when config.steps is 0."""
    raise configs.ConfigError("steps=0: give the step count, steps=N")

  def n_train(self, examples, frac):
    """Training examples at fraction `frac` (only where per_model_fraction)."""
    raise NotImplementedError

  def split(self, key, n):
    """A model's order of the examples; the first n_train train."""
    return jnp.arange(n) if self.fixed_split else jax.random.permutation(key, n)

  def batch(self, d, idx, valid, key, plan):
    """(x, y, weights) to train on: the examples `idx` of the loop's epoch permutation, x prepared, the partial
    last batch of an epoch weighted out by `valid`."""
    return self.prepare(d["x"][idx]), d["y"][idx], valid

  def prepare(self, x):
    """x -> model input, for evaluation and the init example."""
    return x

  def train_kwargs(self, key):
    """Extra model.apply arguments while training (dropout)."""
    return {}

  def correct(self, logits, labels):
    """Per-example accuracy."""
    return jnp.argmax(logits, -1) == labels

  def words(self):
    return tuple(self.groups) + self.model_words

  def patterns(self, words):
    return tuple(p for w in words for p in self.groups.get(w, ()))


def data_error(fn, *args):
  """fn(*args), a data loader, with missing or corrupt files reported as a ConfigError."""
  try:
    return fn(*args)
  except files.DataError as e:
    raise configs.ConfigError(str(e)) from None


def steps_per_epoch(c):
  return math.ceil(c.n_train / c.batch_size)


def epoch_steps(c):
  """`epochs` epochs of steps_per_epoch."""
  return c.epochs * steps_per_epoch(c)


def check_heads(c):
  if c.width % c.heads:
    raise configs.ConfigError(f"width={c.width} is not divisible by heads={c.heads}")


def check_choice(c, key, allowed):
  if c[key] not in allowed:
    raise configs.ConfigError(f"{key}={c[key]!r}; allowed: {', '.join(allowed)}")


def check_fixed_frac(c, share):
  """frac is not a choice where the data fix the split: only its untouched default 0.5 or the share itself."""
  if c.frac != 0.5 and not math.isclose(c.frac, share, rel_tol=1e-9):
    raise configs.ConfigError(f"frac={c.frac:g} does not apply to {c.task}: the split is fixed (the first "
                              f"n_train={c.n_train} training examples, then the test set); set n_train=N instead")


def mse_one_hot(logits, labels):
  """Per-example mean over the outputs of (logit - one_hot)^2: PyTorch's MSELoss on one-hot targets, as
  Omnigrok trains (its logged losses sum over the outputs instead, i.e. are 10x these)."""
  return jnp.mean((logits - jax.nn.one_hot(labels, logits.shape[-1])) ** 2, axis=-1)


LOSSES = {"xent": optax.softmax_cross_entropy_with_integer_labels, "mse": mse_one_hot,
          "stablemax": remedies.stablemax_cross_entropy}


def loss_of(c, name=None):
  """The per-example loss `name` (default: the config's `loss`)."""
  check_choice(c, "loss", tuple(LOSSES))
  return LOSSES[name or c.loss]


def optimizer(c, weight_decay, lr):
  """c.optimizer at learning rate `lr` (a number or a schedule): 'adamw' is PyTorch's AdamW (decoupled weight
  decay lr * wd * p; Adam at weight decay 0), 'sgd' PyTorch's SGD with momentum (weight decay added to the
  gradient, coupled L2, then heavy-ball momentum), 'adam_l2' PyTorch's Adam(weight_decay=...) (wd * p added to
  the gradient before the moments: coupled L2, as grokfast trains)."""
  if c.optimizer == "sgd":
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(lr, momentum=c.momentum))
  if c.optimizer == "adam_l2":
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(lr, b1=c.b1, b2=c.b2, eps=c.eps))
  return optax.adamw(lr, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=weight_decay)


OPTIMIZERS = ("adamw", "adam_l2", "sgd")

