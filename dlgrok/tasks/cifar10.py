"""CIFAR-10 ViT (App. G.2): augmented training batches (crop, flip, RandAugment), normalised evaluation."""
import numpy as np
import optax

from dlgrok import configs
from dlgrok.data import augment, cifar10
from dlgrok.models import vit
from dlgrok.tasks import common

_B = r"block_\d+"
_QKV = f"{_B}/attn/(query|key|value)/kernel"
GROUPS = {
    "none": (), "patch": ("patch_emb/kernel",), "pos": ("pos_emb/embedding",), "qkv": (_QKV,),
    "proj": (f"{_B}/attn/proj/kernel",), "attn": (_QKV, f"{_B}/attn/proj/kernel"),
    "fc1": (f"{_B}/ffn/fc1/kernel",), "fc2": (f"{_B}/ffn/fc2/kernel",), "ffn": (f"{_B}/ffn/fc[12]/kernel",),
    "pre": ("pre_logits/kernel",), "out": ("out/kernel",),
    "all": ("pos_emb/embedding", _QKV, f"{_B}/attn/proj/kernel", f"{_B}/ffn/fc[12]/kernel", "pre_logits/kernel",
            "out/kernel"),
    "all_but_fc1_out": ("pos_emb/embedding", _QKV, f"{_B}/attn/proj/kernel", f"{_B}/ffn/fc2/kernel",
                        "pre_logits/kernel"),
}


class CIFAR10(common.Task):
  name = "cifar10"
  groups = GROUPS
  fixed_split = True

  def check(self, c):
    common.check_heads(c)
    common.check_choice(c, "optimizer", common.OPTIMIZERS)
    if not 0 <= c.warmup_epochs <= c.epochs:
      raise configs.ConfigError(f"warmup_epochs={c.warmup_epochs}: must be in 0..epochs={c.epochs}")

  def load(self, c):
    x, y, n = common.data_error(cifar10.load, c.data_dir, c.download)
    if not 1 <= c.n_train <= n:
      raise configs.ConfigError(f"n_train={c.n_train}: the training batches hold {n} images (allowed 1..{n})")
    common.check_fixed_frac(c, c.n_train / (c.n_train + len(x) - n))
    keep = np.r_[0:c.n_train, n:len(y)]  # the first n_train training images, then the test set
    return common.Data(x=x[keep], y=y[keep], n_train=c.n_train)

  def model(self, c, model_words, data):
    return vit.ViT(width=c.width, heads=c.heads, layers=c.layers, mlp_ratio=c.mlp_ratio, patch=c.patch,
                   dropout=c.dropout)

  def optimizer(self, c, weight_decay):
    """Linear warm-up from end_lr to lr over warmup_epochs, then cosine to end_lr at `epochs` (per step)."""
    per = common.steps_per_epoch(c)
    return common.optimizer(c, weight_decay, optax.warmup_cosine_decay_schedule(
        c.end_lr, c.lr, c.warmup_epochs * per, c.epochs * per, c.end_lr))

  def steps(self, c):
    return common.epoch_steps(c)

  def batch(self, d, idx, valid, key, plan):
    return augment.train_batch(key, d["x"][idx]), d["y"][idx], valid

  def prepare(self, x):
    return augment.eval_batch(x)

  def train_kwargs(self, key):
    return {"train": True, "rngs": {"dropout": key}}


TASK = CIFAR10()
