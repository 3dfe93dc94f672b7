"""The small ViT of App. G.2: patch 4, width 128, 4 heads, 6 pre-LN blocks, MLP ratio 2, pre-logits, head.

Patches (4x4x3, flattened row by row) -> Dense `patch_emb` + a 64-row position table `pos_emb`; a class token
without a position is prepended. Blocks `x = x + proj(attn(ln1(x))); x = x + fc2(gelu(fc1(ln2(x))))` with q, k,
v as three Dense layers with bias. The class token goes through the final LayerNorm, `pre_logits` (Dense with
bias, tanh) and `out`. Dropout after the embeddings, the attention projection, the GELU and fc2. Init: truncated
N(0, 0.02) kernels and position table, zero biases, class token N(0, 1e-6).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

_init = nn.initializers.truncated_normal(0.02)


def dense(features, name):
  return nn.Dense(features, kernel_init=_init, name=name)


class Attention(nn.Module):
  width: int
  heads: int
  dropout: float

  @nn.compact
  def __call__(self, x, train=False):
    b, t, d = x.shape
    hd = d // self.heads
    q, k, v = (dense(d, n)(x).reshape(b, t, self.heads, hd) for n in ("query", "key", "value"))
    att = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) * hd**-0.5, axis=-1)
    out = jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, t, d)
    return nn.Dropout(self.dropout, deterministic=not train)(dense(d, "proj")(out))


class FFN(nn.Module):
  width: int
  hidden: int
  dropout: float

  @nn.compact
  def __call__(self, x, train=False):
    drop = nn.Dropout(self.dropout, deterministic=not train)
    h = drop(nn.gelu(dense(self.hidden, "fc1")(x), approximate=False))
    return drop(dense(self.width, "fc2")(h))


class Block(nn.Module):
  width: int
  heads: int
  hidden: int
  dropout: float

  @nn.compact
  def __call__(self, x, train=False):
    x = x + Attention(self.width, self.heads, self.dropout, name="attn")(nn.LayerNorm(epsilon=1e-5, name="ln1")(x), train)
    return x + FFN(self.width, self.hidden, self.dropout, name="ffn")(nn.LayerNorm(epsilon=1e-5, name="ln2")(x), train)


class ViT(nn.Module):
  """Class logits (batch, classes) for images (batch, H, W, C), H and W multiples of `patch`."""

  classes: int = 10
  width: int = 128
  heads: int = 4
  layers: int = 6
  mlp_ratio: int = 2
  patch: int = 4
  image: int = 32
  dropout: float = 0.1

  @nn.compact
  def __call__(self, images, train=False):
    b, h, w, c = images.shape
    p = self.patch
    x = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, -1, p * p * c)
    n = (self.image // p) ** 2
    x = dense(self.width, "patch_emb")(x)
    x = x + nn.Embed(n, self.width, embedding_init=_init, name="pos_emb")(jnp.arange(x.shape[1]))
    cls = self.param("cls", nn.initializers.normal(1e-6), (1, 1, self.width))
    x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, self.width)), x], axis=1)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    for i in range(self.layers):
      x = Block(self.width, self.heads, self.mlp_ratio * self.width, self.dropout, name=f"block_{i}")(x, train)
    x = nn.LayerNorm(epsilon=1e-5, name="ln_f")(x[:, 0])
    x = jnp.tanh(dense(self.width, "pre_logits")(x))
    return dense(self.classes, "out")(x)
