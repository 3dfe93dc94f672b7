"""The paper's mod-p model: a 2-block post-LN decoder as PyTorch's nn.TransformerDecoder-style grokking code.

Token + position embeddings, blocks `x = LN(x + MHA(x)); x = LN(x + fc2(gelu(fc1(x))))` with one 128->384
in-projection (qkv) and a 128->128 out-projection (proj), causal mask, final LayerNorm, output layer.
Initialisation follows PyTorch's defaults (`init='torch'`) or Xavier (`xavier_uniform`, `xavier_normal`).
`pre_ln` is grokfast's model instead (github ironjr/grokfast, main.py): `h = LN(x); x = h + MHA(h);
x = x + fc2(gelu(fc1(LN(x))))` (its residual starts from the normalised input) and an output layer without bias.
"""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

INITS = ("torch", "xavier_uniform", "xavier_normal")


def torch_uniform(fan_in):
  """U(+-1/sqrt(fan_in)): PyTorch's Linear weight (kaiming-uniform, a=sqrt(5)) and bias default."""
  bound = 1.0 / fan_in**0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def inits(kind, fan_in):
  """(kernel_init, bias_init) for a Dense layer with `fan_in` inputs."""
  if kind == "torch":
    return torch_uniform(fan_in), torch_uniform(fan_in)
  if kind == "xavier_uniform":
    return nn.initializers.xavier_uniform(), nn.initializers.zeros
  if kind == "xavier_normal":
    return nn.initializers.xavier_normal(), nn.initializers.zeros
  raise ValueError(f"unknown init {kind!r}; allowed: {', '.join(INITS)}")


def dense(features, kind, fan_in, name):
  kernel_init, bias_init = inits(kind, fan_in)
  return nn.Dense(features, kernel_init=kernel_init, bias_init=bias_init, name=name)


class Attention(nn.Module):
  width: int
  heads: int
  init_scheme: str = "torch"

  @nn.compact
  def __call__(self, x, last_only=False):
    b, t, d = x.shape
    hd = d // self.heads
    # nn.MultiheadAttention initialises its in-projection xavier-uniform whatever the rest uses
    qkv_init = nn.initializers.xavier_normal() if self.init_scheme == "xavier_normal" else nn.initializers.xavier_uniform()
    qkv = nn.Dense(3 * d, kernel_init=qkv_init, bias_init=nn.initializers.zeros, name="qkv")(x)
    q, k, v = jnp.split(qkv, 3, axis=-1)
    if last_only:  # only the last query is read downstream
      q = q[:, -1:]
    tq = q.shape[1]
    q = q.reshape(b, tq, self.heads, hd)
    k = k.reshape(b, t, self.heads, hd)
    v = v.reshape(b, t, self.heads, hd)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / hd**0.5
    causal = jnp.arange(t)[None, :] <= jnp.arange(t - tq, t)[:, None]
    logits = jnp.where(causal, logits, -jnp.inf)
    att = jax.nn.softmax(logits, axis=-1)
    out = jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, tq, d)
    k_init, _ = inits(self.init_scheme, d)
    return nn.Dense(d, kernel_init=k_init, bias_init=nn.initializers.zeros, name="proj")(out)


class FFN(nn.Module):
  width: int
  hidden: int
  init_scheme: str = "torch"

  @nn.compact
  def __call__(self, x):
    h = dense(self.hidden, self.init_scheme, self.width, "fc1")(x)
    h = nn.gelu(h, approximate=False)
    return dense(self.width, self.init_scheme, self.hidden, "fc2")(h)


class Block(nn.Module):
  width: int
  heads: int
  init_scheme: str = "torch"
  pre_ln: bool = False

  @nn.compact
  def __call__(self, x, last_only=False):
    ln = functools.partial(nn.LayerNorm, epsilon=1e-5)
    ffn = FFN(self.width, 4 * self.width, self.init_scheme, name="ffn")
    if self.pre_ln:
      h = ln(name="ln1")(x)
      a = Attention(self.width, self.heads, self.init_scheme, name="attn")(h, last_only)
      x = (h[:, -1:] if last_only else h) + a
      return x + ffn(ln(name="ln2")(x))
    a = Attention(self.width, self.heads, self.init_scheme, name="attn")(x, last_only)
    if last_only:
      x = x[:, -1:]
    x = ln(name="ln1")(x + a)
    return ln(name="ln2")(x + ffn(x))


class Transformer(nn.Module):
  """Returns logits (batch, vocab) at the last input position (the '=' token)."""

  vocab: int
  width: int = 128
  heads: int = 4
  layers: int = 2
  positions: int = 5
  use_pos: bool = True
  init_scheme: str = "torch"
  pre_ln: bool = False

  @nn.compact
  def __call__(self, tokens):
    emb_init = nn.initializers.normal(1.0) if self.init_scheme == "torch" else inits(self.init_scheme, self.width)[0]
    x = nn.Embed(self.vocab, self.width, embedding_init=emb_init, name="tok_emb")(tokens)
    if self.use_pos:
      pos = nn.Embed(self.positions, self.width, embedding_init=emb_init, name="pos_emb")
      x = x + pos(jnp.arange(tokens.shape[1]))[None]
    for i in range(self.layers):
      x = Block(self.width, self.heads, self.init_scheme, self.pre_ln, name=f"block_{i}")(
          x, last_only=i == self.layers - 1)
    x = nn.LayerNorm(epsilon=1e-5, name="ln_f")(x[:, -1])
    if self.pre_ln:
      return nn.Dense(self.vocab, use_bias=False, kernel_init=torch_uniform(self.width), name="out")(x)
    return dense(self.vocab, self.init_scheme, self.width, "out")(x)
