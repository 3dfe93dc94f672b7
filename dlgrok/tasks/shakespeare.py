"""Tiny Shakespeare character GPT (App. G.1): random 256-character windows of the first frac of the text."""
import jax.numpy as jnp

from dlgrok import configs
from dlgrok.data import shakespeare
from dlgrok.models import gpt
from dlgrok.tasks import common

_B = r"block_\d+"
_H = r"block_\d+/attn/head_\d+"
GROUPS = {
    "none": (), "pos": ("pos_emb/embedding",), "tok": ("tok_emb/embedding",),
    "qkv": (f"{_H}_(query|key|value)/kernel",), "proj": (f"{_B}/attn/proj/kernel",),
    "attn": (f"{_H}_(query|key|value)/kernel", f"{_B}/attn/proj/kernel"),
    "fc1": (f"{_B}/ffn/fc1/kernel",), "fc2": (f"{_B}/ffn/fc2/kernel",), "ffn": (f"{_B}/ffn/fc[12]/kernel",),
    "out": ("out/kernel",),
    "all": ("pos_emb/embedding", "tok_emb/embedding", f"{_H}_(query|key|value)/kernel", f"{_B}/attn/proj/kernel",
            f"{_B}/ffn/fc[12]/kernel", "out/kernel"),
}


class Shakespeare(common.Task):
  name = "shakespeare"
  groups = GROUPS
  fixed_split = True

  def check(self, c):
    common.check_choice(c, "dropout_site", gpt.DROPOUT_SITES)
    common.check_choice(c, "optimizer", common.OPTIMIZERS)
    common.check_heads(c)
    if not 0 <= c.dropout < 1:
      raise configs.ConfigError(f"dropout={c.dropout}: must be in [0, 1)")

  def load(self, c):
    d = common.data_error(shakespeare.load, c.data_dir, c.frac, c.block)
    return common.Data(x=d["x"], y=d["y"], n_train=d["n_train_blocks"], frac=c.frac, stream=d["stream"],
                       stream_train=d["n_train_chars"], vocab=len(d["vocab"]))

  def model(self, c, model_words, data):
    return gpt.GPT(vocab=data.vocab, width=c.width, heads=c.heads, layers=c.layers, block=c.block,
                   dropout=c.dropout, dropout_site=c.dropout_site)

  def loss(self, c, name=None):
    """Per-sequence mean of the next-character loss."""
    per_token = common.loss_of(c, name)
    return lambda logits, labels: jnp.mean(per_token(logits, labels), axis=-1)

  def correct(self, logits, labels):
    return jnp.mean(jnp.argmax(logits, -1) == labels, axis=-1)

  def batch(self, d, idx, valid, key, plan):
    """nanoGPT's get_batch: random windows of the training text, drawn per model (idx is not used)."""
    c = plan.config
    x, y = shakespeare.windows(d["stream"], plan.data.stream_train, key, c.batch_size, c.block)
    return x, y, jnp.ones(c.batch_size)

  def train_kwargs(self, key):
    return {"train": True, "rngs": {"dropout": key}}


TASK = Shakespeare()
