"""x op y mod p (paper §4, Power et al.): the paper's 2-block post-LN transformer on `x op y =`."""
import optax

from dlgrok import configs
from dlgrok.data import algorithmic
from dlgrok.models import transformer
from dlgrok.tasks import common

_B = r"block_\d+"
GROUPS = {
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


class ModP(common.Task):
  name = "modp"
  groups = GROUPS
  model_words = ("nopos", "preln")
  per_model_fraction = True

  def check(self, c):
    try:
      algorithmic.check(c.op, c.p)
    except ValueError as e:
      raise configs.ConfigError(str(e)) from None
    common.check_choice(c, "init", transformer.INITS)
    common.check_choice(c, "optimizer", common.OPTIMIZERS)
    common.check_heads(c)

  def load(self, c):
    x, y = algorithmic.make(c.op, c.p, c.nonzero_y)
    return common.Data(x=x, y=y, n_train=algorithmic.n_train(len(y), c.frac))

  def model(self, c, model_words, data):
    return transformer.Transformer(vocab=algorithmic.vocab_size(c.p), width=c.width, heads=c.heads, layers=c.layers,
                                   positions=5, use_pos="nopos" not in model_words, init_scheme=c.init,
                                   pre_ln="preln" in model_words)

  def optimizer(self, c, weight_decay):
    """With PyTorch's LinearLR warm-up: warmup_start * lr -> lr over the first `warmup_steps` steps."""
    return common.optimizer(c, weight_decay, optax.linear_schedule(c.warmup_start * c.lr, c.lr,
                                                                   max(c.warmup_steps, 1)))

  def steps(self, c):
    """The config's step count for its training fraction (`steps_by_frac`, keyed by fX tokens)."""
    key = f"f{100 * c.frac:g}"
    if key not in c.steps_by_frac:
      raise configs.ConfigError(f"no step count for frac={c.frac:g} (known: {', '.join(c.steps_by_frac)}); "
                                "pass steps=N")
    return c.steps_by_frac[key]

  def n_train(self, examples, frac):
    return algorithmic.n_train(examples, frac)


TASK = ModP()
