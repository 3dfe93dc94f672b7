"""The character-level GPT of App. G.1: karpathy's "Let's build GPT" lecture model (ng-video-lecture gpt.py).

Pre-LN blocks `x = x + proj(heads(ln1(x))); x = x + fc2(relu(fc1(ln2(x))))`; every head has its own query, key
and value kernel (width x width/heads, no bias) as in the lecture's `Head`, so each is its own decomposable
matrix; they are concatenated for one matmul. Dropout after the attention softmax (`dropout_site='probs'`, the
lecture's choice) or on q, k and v themselves ('qkv'), after the attention projection and after fc2. Init:
N(0, 0.02) for kernels and embeddings, zero biases.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

DROPOUT_SITES = ("probs", "qkv")
_init = nn.initializers.normal(0.02)


class Kernel(nn.Module):
  """A bare (m, n) weight matrix, so that its path ends in '/kernel' like a Dense layer's."""

  shape: tuple

  @nn.compact
  def __call__(self):
    return self.param("kernel", _init, self.shape)


class Attention(nn.Module):
  width: int
  heads: int
  dropout: float
  dropout_site: str = "probs"

  @nn.compact
  def __call__(self, x, train=False):
    b, t, d = x.shape
    hd = d // self.heads
    kernels = [Kernel((d, hd), name=f"head_{h}_{n}")() for n in ("query", "key", "value") for h in range(self.heads)]
    q, k, v = jnp.split((x @ jnp.concatenate(kernels, axis=1)).reshape(b, t, 3, self.heads, hd), 3, axis=2)
    q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]
    drop = nn.Dropout(self.dropout, deterministic=not train)
    if self.dropout_site == "qkv":
      q, k, v = drop(q), drop(k), drop(v)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * hd**-0.5
    causal = jnp.tril(jnp.ones((t, t), bool))
    att = jax.nn.softmax(jnp.where(causal, logits, -jnp.inf), axis=-1)
    if self.dropout_site == "probs":
      att = drop(att)
    out = jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, t, d)
    return drop(nn.Dense(d, kernel_init=_init, name="proj")(out))


class FFN(nn.Module):
  width: int
  dropout: float

  @nn.compact
  def __call__(self, x, train=False):
    h = nn.relu(nn.Dense(4 * self.width, kernel_init=_init, name="fc1")(x))
    return nn.Dropout(self.dropout, deterministic=not train)(nn.Dense(self.width, kernel_init=_init, name="fc2")(h))


class Block(nn.Module):
  width: int
  heads: int
  dropout: float
  dropout_site: str = "probs"

  @nn.compact
  def __call__(self, x, train=False):
    x = x + Attention(self.width, self.heads, self.dropout, self.dropout_site, name="attn")(
        nn.LayerNorm(epsilon=1e-5, name="ln1")(x), train)
    return x + FFN(self.width, self.dropout, name="ffn")(nn.LayerNorm(epsilon=1e-5, name="ln2")(x), train)


class GPT(nn.Module):
  """Next-character logits (batch, time, vocab) for character ids (batch, time), time <= block."""

  vocab: int = 65
  width: int = 384
  heads: int = 6
  layers: int = 6
  block: int = 256
  dropout: float = 0.2
  dropout_site: str = "probs"

  @nn.compact
  def __call__(self, ids, train=False):
    x = nn.Embed(self.vocab, self.width, embedding_init=_init, name="tok_emb")(ids)
    x = x + nn.Embed(self.block, self.width, embedding_init=_init, name="pos_emb")(jnp.arange(ids.shape[1]))
    for i in range(self.layers):
      x = Block(self.width, self.heads, self.dropout, self.dropout_site, name=f"block_{i}")(x, train)
    x = nn.LayerNorm(epsilon=1e-5, name="ln_f")(x)
    return nn.Dense(self.vocab, kernel_init=_init, name="out")(x)
