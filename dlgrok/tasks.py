"""One explicit table: task name -> data, model, loss, optimiser, layer groups (path regexes), default ranks."""
import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlgrok import configs
from dlgrok.data import algorithmic, augment, cifar10, files, mnist, shakespeare
from dlgrok.models import gpt, mlp, transformer, vit

PAPER_PCTS = ("p12.5", "p25", "p50", "p75", "p100")


def correct(logits, labels):
  return jnp.argmax(logits, -1) == labels


@dataclasses.dataclass(frozen=True)
class Data:
  """The whole data set as arrays; each model draws its own train/test split of `n_train` examples."""
  x: object
  y: object
  n_train: int
  frac: float | None = None  # the training share to record, when it is not n_train / len(y)
  stream: object = None  # a token stream that training batches are drawn from (Tiny Shakespeare)
  stream_train: int = 0  # training draws read only stream[:stream_train]


@dataclasses.dataclass(frozen=True)
class Task:
  name: str
  check: Callable  # config -> None, raises ConfigError
  data: Callable  # config -> Data
  model: Callable  # (config, variant words) -> flax module
  loss: Callable  # (logits, labels) -> per-example loss
  optimizer: Callable  # (config, weight_decay) -> optax transform
  groups: dict  # group word -> path regexes of the leaves it factorises
  variants: tuple  # words that change the model itself rather than factorise it
  default_ranks: Callable  # group words -> rank tokens
  steps_by_frac: dict  # train fraction -> paper's step count
  fixed_split: bool = False  # every model trains on the first n_train examples of Data.x, tests on the rest
  default_steps: Callable | None = None  # config -> steps, for tasks whose step count does not depend on frac
  correct: Callable = correct  # (logits, labels) -> per-example accuracy
  stochastic: bool = False  # the model takes train=True and a per-model 'dropout' rng while training
  sample: Callable | None = None  # (stream, limit, key, config) -> (x, y): training batches drawn from Data.stream
  augment: Callable | None = None  # (key, x) -> x: a training batch, per model
  prepare: Callable | None = None  # x -> x: an evaluation batch (and the init example)

  def words(self):
    return tuple(self.groups) + self.variants

  def patterns(self, words):
    return tuple(p for w in words for p in self.groups.get(w, ()))


def example(task, x):
  """The model's input for x (the first example is what init sees)."""
  return task.prepare(x) if task.prepare else x


def data_error(fn, *args):
  """fn(*args), a data loader, with missing or corrupt files reported as a ConfigError."""
  try:
    return fn(*args)
  except files.DataError as e:
    raise configs.ConfigError(str(e)) from None


def steps_per_epoch(c):
  return math.ceil(c.n_train / c.batch_size)


def check_heads(c):
  if c.width % c.heads:
    raise configs.ConfigError(f"width={c.width} is not divisible by heads={c.heads}")


def check_fixed_frac(c, share):
  """frac is not a choice where the data fix the split: only its untouched default 0.5 or the share itself."""
  if c.frac != 0.5 and not math.isclose(c.frac, share, rel_tol=1e-9):
    raise configs.ConfigError(f"frac={c.frac:g} does not apply to {c.task}: the split is fixed (the first "
                              f"n_train={c.n_train} training examples, then the test set); set n_train=N instead")


# --- mod-p grokking (paper §4) ---------------------------------------------------------------------------

_B = r"block_\d+"
MOD_P_GROUPS = {
    "none": (),
    "tok": ("tok_emb/embedding",),
    "pos": ("pos_emb/embedding",),
    "qkv": (f"{_B}/attn/qkv/kernel",),
    "proj": (f"{_B}/attn/proj/kernel",),
    "attn": (f"{_B}/attn/qkv/kernel", f"{_B}/attn/proj/kernel"),
    "fc1": (f"{_B}/ffn/fc1/kernel",),
    "fc2": (f"{_B}/ffn/fc2/kernel",),
    "ffn": (f"{_B}/ffn/fc1/kernel", f"{_B}/ffn/fc2/kernel"),
    "out": ("out/kernel",),
    "all": ("tok_emb/embedding", f"{_B}/attn/qkv/kernel", f"{_B}/attn/proj/kernel", f"{_B}/ffn/fc1/kernel",
            f"{_B}/ffn/fc2/kernel", "out/kernel"),
}


def mod_p_check(c):
  try:
    algorithmic.check(c.op, c.p)
  except ValueError as e:
    raise configs.ConfigError(str(e)) from None
  if c.init not in transformer.INITS:
    raise configs.ConfigError(f"init={c.init!r}; allowed: {', '.join(transformer.INITS)}")
  check_heads(c)


def mod_p_data(c):
  x, y = algorithmic.make(c.op, c.p)
  return Data(x=x, y=y, n_train=algorithmic.n_train(len(y), c.frac))


def mod_p_model(c, variants=()):
  return transformer.Transformer(vocab=algorithmic.vocab_size(c.p), width=c.width, heads=c.heads, layers=c.layers,
                                 positions=5, use_pos="nopos" not in variants, init_scheme=c.init)


def mod_p_optimizer(c, weight_decay):
  """AdamW with PyTorch's LinearLR warm-up: 0.1*lr -> lr over the first `warmup_steps` steps."""
  sched = optax.linear_schedule(c.warmup_start * c.lr, c.lr, max(c.warmup_steps, 1))
  return optax.adamw(sched, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=weight_decay)


def mod_p_default_ranks(words):
  return ("r1", "r2", "r3", "r4", "r5") if tuple(words) == ("pos",) else PAPER_PCTS


def mod_p_config(**fields):
  """The paper's mod-p settings (§4): width 128, 4 heads, 2 blocks, AdamW (0.9, 0.98), 10-step warm-up."""
  c = configs.base(task="mod97", p=97, op="x/y", width=128, heads=4, layers=2, b1=0.9, b2=0.98, eps=1e-8,
                   warmup_steps=9, warmup_start=0.1)
  c.update(fields)
  return c


def mod_p_task(name, steps_by_frac):
  return Task(name=name, check=mod_p_check, data=mod_p_data, model=mod_p_model,
              loss=optax.softmax_cross_entropy_with_integer_labels, optimizer=mod_p_optimizer, groups=MOD_P_GROUPS,
              variants=("nopos",), default_ranks=mod_p_default_ranks, steps_by_frac=steps_by_frac)


# --- MNIST (App. E, F) ----------------------------------------------------------------------------------

MNIST_GROUPS = {"none": (), "l1": ("l1/kernel",), "l2": ("l2/kernel",), "l3": ("l3/kernel",),
                "l23": ("l2/kernel", "l3/kernel"), "all": ("l1/kernel", "l2/kernel", "l3/kernel")}
TENTHS = tuple(f"p{10 * i}" for i in range(1, 11))


def pixels(c):
  return c.get("pixels", "unit")  # runs made before the field existed used [0, 1]


def mnist_check(c):
  if c.init not in transformer.INITS:
    raise configs.ConfigError(f"init={c.init!r}; allowed: {', '.join(transformer.INITS)}")
  if c.width < 1:
    raise configs.ConfigError(f"width={c.width}: need at least 1")
  if pixels(c) not in mnist.PIXELS:
    raise configs.ConfigError(f"pixels={pixels(c)!r}; allowed: {', '.join(mnist.PIXELS)}")
  x, _ = data_error(mnist.load, c.data_dir, c.n_train, pixels(c))  # missing or corrupt files fail here
  check_fixed_frac(c, c.n_train / len(x))  # resolve records the share as frac


def mnist_data(c):
  x, y = mnist.load(c.data_dir, c.n_train, pixels(c))
  return Data(x=x, y=y, n_train=c.n_train)


def mnist_model(c, variants=()):
  return mlp.MLP(features=(c.width, c.width, 10), init_scheme=c.init)


def mse_one_hot(logits, labels):
  """Per-example mean over the 10 outputs of (logit - one_hot)^2: PyTorch's MSELoss on one-hot targets, as
  Omnigrok trains (its logged losses sum over the outputs instead, i.e. are 10x these)."""
  return jnp.mean((logits - jax.nn.one_hot(labels, logits.shape[-1])) ** 2, axis=-1)


def adamw_optimizer(c, weight_decay):
  """PyTorch's AdamW: decoupled weight decay, lr * wd * p (Adam at weight decay 0, as App. G trains)."""
  return optax.adamw(c.lr, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=weight_decay)


def sgd_optimizer(c, weight_decay):
  """PyTorch's SGD with momentum: weight decay added to the gradient (coupled L2), then heavy-ball momentum."""
  return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(c.lr, momentum=c.momentum))


def mnist_grok_config(**fields):
  """App. F after Omnigrok: 784-200-200-10 ReLU MLP, 1000 images, MSE, AdamW 1e-3 wd 0.01, batch 200, init x8;
  pixels in [0, 1] as Omnigrok's own code (torchvision's ToTensor, no normalisation)."""
  c = configs.base(task="mnist_grok", width=200, n_train=1000, batch_size=200, lr=1e-3, b1=0.9, b2=0.999,
                   eps=1e-8, weight_decay=0.01, init_scale=8.0, seeds=3, eval_chunk=2000, pixels="unit")
  c.update(fields)
  return c


def mnist_wd_config(**fields):
  """App. E: 784-256-256-10 ReLU MLP, 60000 images, SGD lr 1e-3 momentum 0.9, batch 256, 25 epochs, 6 wds;
  pixels in [-1, 1] (torchvision's Normalize((0.5,), (0.5,))): with it our baselines land on the paper's."""
  c = configs.base(task="mnist_wd", width=256, n_train=60000, batch_size=256, lr=1e-3, momentum=0.9, epochs=25,
                   weight_decays="0,1.0,0.1,0.01,0.001,0.0001", seeds=10, eval_points=50, eval_chunk=2000,
                   pixels="symmetric")
  c.update(fields)
  return c


def mnist_task(name, loss, optimizer, default_ranks, default_steps):
  return Task(name=name, check=mnist_check, data=mnist_data, model=mnist_model, loss=loss, optimizer=optimizer,
              groups=MNIST_GROUPS, variants=(), default_ranks=default_ranks, steps_by_frac={}, fixed_split=True,
              default_steps=default_steps)


# --- Tiny Shakespeare (App. G.1) and CIFAR-10 (App. G.2) -----------------------------------------------

_H = r"block_\d+/attn/head_\d+"
SHAKESPEARE_GROUPS = {
    "none": (), "pos": ("pos_emb/embedding",), "tok": ("tok_emb/embedding",),
    "qkv": (f"{_H}_(query|key|value)/kernel",), "proj": (f"{_B}/attn/proj/kernel",),
    "attn": (f"{_H}_(query|key|value)/kernel", f"{_B}/attn/proj/kernel"),
    "fc1": (f"{_B}/ffn/fc1/kernel",), "fc2": (f"{_B}/ffn/fc2/kernel",), "ffn": (f"{_B}/ffn/fc[12]/kernel",),
    "out": ("out/kernel",),
    "all": ("pos_emb/embedding", "tok_emb/embedding", f"{_H}_(query|key|value)/kernel", f"{_B}/attn/proj/kernel",
            f"{_B}/ffn/fc[12]/kernel", "out/kernel"),
}
_QKV = f"{_B}/attn/(query|key|value)/kernel"
CIFAR_GROUPS = {
    "none": (), "patch": ("patch_emb/kernel",), "pos": ("pos_emb/embedding",), "qkv": (_QKV,),
    "proj": (f"{_B}/attn/proj/kernel",), "attn": (_QKV, f"{_B}/attn/proj/kernel"),
    "fc1": (f"{_B}/ffn/fc1/kernel",), "fc2": (f"{_B}/ffn/fc2/kernel",), "ffn": (f"{_B}/ffn/fc[12]/kernel",),
    "pre": ("pre_logits/kernel",), "out": ("out/kernel",),
    "all": ("pos_emb/embedding", _QKV, f"{_B}/attn/proj/kernel", f"{_B}/ffn/fc[12]/kernel", "pre_logits/kernel",
            "out/kernel"),
    "all_but_fc1_out": ("pos_emb/embedding", _QKV, f"{_B}/attn/proj/kernel", f"{_B}/ffn/fc2/kernel",
                        "pre_logits/kernel"),
}


def shakespeare_check(c):
  if c.dropout_site not in gpt.DROPOUT_SITES:
    raise configs.ConfigError(f"dropout_site={c.dropout_site!r}; allowed: {', '.join(gpt.DROPOUT_SITES)}")
  check_heads(c)
  if not 0 <= c.dropout < 1:
    raise configs.ConfigError(f"dropout={c.dropout}: must be in [0, 1)")
  data_error(shakespeare.load, c.data_dir, c.frac, c.block)


def shakespeare_data(c):
  d = shakespeare.load(c.data_dir, c.frac, c.block)
  return Data(x=d["x"], y=d["y"], n_train=d["n_train_blocks"], frac=c.frac, stream=d["stream"],
              stream_train=d["n_train_chars"])


def shakespeare_model(c, variants=()):
  vocab = len(shakespeare.vocab(shakespeare.read(c.data_dir)))
  return gpt.GPT(vocab=vocab, width=c.width, heads=c.heads, layers=c.layers, block=c.block, dropout=c.dropout,
                 dropout_site=c.dropout_site)


def seq_loss(logits, labels):
  """Per-sequence mean next-character cross-entropy."""
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels), axis=-1)


def seq_correct(logits, labels):
  return jnp.mean(jnp.argmax(logits, -1) == labels, axis=-1)


def shakespeare_config(**fields):
  """App. G.1: karpathy's lecture GPT (6 x 384, 6 heads, block 256, dropout 0.2), batch 64, Adam 3e-4, 5000 steps."""
  c = configs.base(task="shakespeare", width=384, heads=6, layers=6, block=256, dropout=0.2, dropout_site="probs",
                   batch_size=64, lr=3e-4, b1=0.9, b2=0.999, eps=1e-8, seeds=3, eval_points=10,
                   eval_spacing="linear", eval_chunk=32, frac=0.9)
  c.update(fields)
  return c


def cifar_check(c):
  check_heads(c)
  if not 0 <= c.warmup_epochs <= c.epochs:
    raise configs.ConfigError(f"warmup_epochs={c.warmup_epochs}: must be in 0..epochs={c.epochs}")
  x, _, n = data_error(cifar10.load, c.data_dir, c.download)
  if not 1 <= c.n_train <= n:
    raise configs.ConfigError(f"n_train={c.n_train}: the training batches hold {n} images (allowed 1..{n})")
  check_fixed_frac(c, c.n_train / (c.n_train + len(x) - n))


def cifar_data(c):
  x, y, n = cifar10.load(c.data_dir, c.download)
  keep = np.r_[0:c.n_train, n:len(y)]  # the first n_train training images, then the test set
  return Data(x=x[keep], y=y[keep], n_train=c.n_train)


def cifar_model(c, variants=()):
  return vit.ViT(width=c.width, heads=c.heads, layers=c.layers, mlp_ratio=c.mlp_ratio, patch=c.patch,
                 dropout=c.dropout)


def cifar_optimizer(c, weight_decay):
  """Adam: linear warm-up from end_lr to lr over warmup_epochs, then cosine to end_lr at `epochs` (per step)."""
  per = steps_per_epoch(c)
  sched = optax.warmup_cosine_decay_schedule(c.end_lr, c.lr, c.warmup_epochs * per, c.epochs * per, c.end_lr)
  return optax.adamw(sched, b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=weight_decay)


def cifar_config(**fields):
  """App. G.2: ViT 6 x 128, 4 heads, MLP x2, patch 4, dropout 0.1; batch 128, Adam 5e-4, 10 + 90 epochs."""
  c = configs.base(task="cifar10", width=128, heads=4, layers=6, mlp_ratio=2, patch=4, dropout=0.1,
                   batch_size=128, lr=5e-4, end_lr=1e-5, b1=0.9, b2=0.999, eps=1e-8, epochs=100, warmup_epochs=10,
                   n_train=50000, download=False, seeds=3, eval_points=100, eval_spacing="linear",
                   eval_chunk=1000)
  c.update(fields)
  return c


TASKS = {
    "mod97": mod_p_task("mod97", {0.5: 1e6, 0.65: 1e5, 0.8: 1e4}),
    "mod59": mod_p_task("mod59", {0.65: 1e6, 0.8: 3e5}),
    # the paper ran layers 2+3 at 100 % only (Figure 28)
    "mnist_grok": mnist_task("mnist_grok", mse_one_hot, adamw_optimizer,
                             lambda words: ("p100",) if tuple(words) == ("l23",) else PAPER_PCTS,
                             lambda c: 1e5),
    # App. E does not name its loss: cross-entropy, the usual one for MNIST classification
    "mnist_wd": mnist_task("mnist_wd", optax.softmax_cross_entropy_with_integer_labels, sgd_optimizer,
                           lambda words: TENTHS, lambda c: c.epochs * steps_per_epoch(c)),
    "shakespeare": Task(
        name="shakespeare", check=shakespeare_check, data=shakespeare_data, model=shakespeare_model,
        loss=seq_loss, optimizer=adamw_optimizer, groups=SHAKESPEARE_GROUPS, variants=(),
        default_ranks=lambda words: PAPER_PCTS, steps_by_frac={}, fixed_split=True, default_steps=lambda c: 5000,
        correct=seq_correct, stochastic=True,
        sample=lambda stream, limit, key, c: shakespeare.windows(stream, limit, key, c.batch_size, c.block)),
    "cifar10": Task(
        name="cifar10", check=cifar_check, data=cifar_data, model=cifar_model,
        loss=optax.softmax_cross_entropy_with_integer_labels, optimizer=cifar_optimizer, groups=CIFAR_GROUPS,
        variants=(), default_ranks=lambda words: PAPER_PCTS, steps_by_frac={}, fixed_split=True,
        default_steps=lambda c: c.epochs * steps_per_epoch(c), stochastic=True,
        augment=augment.train_batch, prepare=augment.eval_batch),
}


def get(name):
  if name not in TASKS:
    raise configs.ConfigError(f"unknown task {name!r}; allowed: {', '.join(TASKS)}")
  return TASKS[name]
