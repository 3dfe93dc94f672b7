"""One explicit table: task name -> data, model, loss, optimiser, layer groups (path regexes), default ranks."""
import dataclasses
from typing import Callable

import jax.numpy as jnp
import optax

from dlgrok import configs
from dlgrok.data import algorithmic
from dlgrok.models import transformer

PAPER_PCTS = ("p12.5", "p25", "p50", "p75", "p100")


@dataclasses.dataclass(frozen=True)
class Data:
  """The whole data set as arrays; each model draws its own train/test split of `n_train` examples."""
  x: object
  y: object
  n_train: int


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

  def words(self):
    return tuple(self.groups) + self.variants

  def patterns(self, words):
    return tuple(p for w in words for p in self.groups.get(w, ()))


def correct(logits, labels):
  return jnp.argmax(logits, -1) == labels


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
  if c.width % c.heads:
    raise configs.ConfigError(f"width={c.width} is not divisible by heads={c.heads}")


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


TASKS = {
    "mod97": mod_p_task("mod97", {0.5: 1e6, 0.65: 1e5, 0.8: 1e4}),
    "mod59": mod_p_task("mod59", {0.65: 1e6, 0.8: 3e5}),
}


def get(name):
  if name not in TASKS:
    raise configs.ConfigError(f"unknown task {name!r}; allowed: {', '.join(TASKS)}")
  return TASKS[name]
