"""Published remedies for grokking as optax gradient transformations (and one loss), vmap-friendly.

Every numeric hyperparameter may be a traced per-model scalar under `jax.vmap`; state shapes depend only on the
parameters and static sizes (`max_window`). References: Grokfast (Lee et al. 2024, github ironjr/grokfast,
`gradfilter_ema` / `gradfilter_ma`) and StableMax / ⊥Grad (Prieto et al. 2025, github
LucasPrietoAl/grokking-at-the-edge-of-numerical-stability, `stablemax_cross_entropy` / `OrthoGrad`).
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from dlgrok.configs import EMA_ALPHA, EMA_LAMB, MA_LAMB, MA_WINDOW


class GrokfastEmaState(NamedTuple):
  count: jax.Array  # int32 steps seen, saturating at 1: only "started or not" matters
  h: optax.Updates


class GrokfastMaState(NamedTuple):
  count: jax.Array  # int32 gradients seen, saturating at max_window
  pos: jax.Array  # int32 ring-buffer slot the next gradient goes to
  buf: optax.Updates  # per leaf (max_window, *leaf.shape)


def grokfast_ema(alpha=EMA_ALPHA, lamb=EMA_LAMB):
  """Grokfast-EMA: h <- alpha h + (1 - alpha) g, then g <- g + lamb h, on the raw gradient. As in the
  reference, h starts from the first gradient itself (h = g_1 after step 1), not from zeros."""

  def init(params):
    return GrokfastEmaState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params))

  def update(updates, state, params=None):
    del params
    first = state.count == 0
    h = jax.tree.map(lambda h, g: (alpha * jnp.where(first, g, h) + (1 - alpha) * g).astype(g.dtype),
                     state.h, updates)
    out = jax.tree.map(lambda g, h: (g + lamb * h).astype(g.dtype), updates, h)
    return out, GrokfastEmaState(jnp.minimum(state.count + 1, 1), h)

  return optax.GradientTransformation(init, update)


def grokfast_ma(window=MA_WINDOW, lamb=MA_LAMB, max_window=MA_WINDOW):
  """Grokfast-MA: g <- g + lamb mean(last `window` raw gradients, current included) once `window` gradients
  were seen (the reference's warmup=True), else g unchanged. `window` may be traced; values above the static
  `max_window` (the ring buffer's length) are clipped to it, as a traced value cannot raise."""
  if isinstance(window, int) and not 1 <= window <= max_window:
    raise ValueError(f"grokfast_ma: window {window} must be in [1, max_window={max_window}]")

  def init(params):
    buf = jax.tree.map(lambda p: jnp.zeros((max_window,) + p.shape, p.dtype), params)
    return GrokfastMaState(jnp.zeros([], jnp.int32), jnp.zeros([], jnp.int32), buf)

  def update(updates, state, params=None):
    del params
    w = jnp.clip(jnp.asarray(window, jnp.int32), 1, max_window)
    buf = jax.tree.map(lambda b, g: b.at[state.pos].set(g), state.buf, updates)
    count = jnp.minimum(state.count + 1, max_window)
    age = (state.pos - jnp.arange(max_window)) % max_window  # 0 for the current gradient
    mask = age < w
    ready = count >= w

    def one(g, b):
      # a masked sum, not a dot with the mask: a float32 dot may run in TF32 on GPUs
      m = mask.reshape((max_window,) + (1,) * g.ndim)
      mean = jnp.sum(jnp.where(m, b.astype(jnp.float32), 0.0), axis=0) / w
      return jnp.where(ready, g + lamb * mean, g).astype(g.dtype)

    out = jax.tree.map(one, updates, buf)
    return out, GrokfastMaState(count, (state.pos + 1) % max_window, buf)

  return optax.GradientTransformation(init, update)


def orthograd():
  """⊥Grad: per leaf, g_perp = g - (<w, g> / <w, w>) w rescaled to ||g||. Where the reference adds 1e-30 to
  <w, w> and ||g_perp||, we divide only where they are > 0 (else projection 0 / scale 0): in float32,
  ||g|| / 1e-30 overflows to inf for ||g|| > 3e8 and 0 * inf would be NaN."""

  def init(params):
    del params
    return optax.EmptyState()

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("orthograd needs the parameters: call tx.update(grads, state, params)")

    def one(g, w):
      g32, w32 = g.astype(jnp.float32), w.astype(jnp.float32)
      ww, wg = jnp.sum(w32 * w32), jnp.sum(w32 * g32)
      perp = g32 - jnp.where(ww > 0, wg / jnp.where(ww > 0, ww, 1.0), 0.0) * w32
      pn, gn = jnp.sqrt(jnp.sum(perp * perp)), jnp.sqrt(jnp.sum(g32 * g32))
      return (perp * jnp.where(pn > 0, gn / jnp.where(pn > 0, pn, 1.0), 0.0)).astype(g.dtype)

    return jax.tree.map(one, updates, params), state

  return optax.GradientTransformation(init, update)


def stablemax_cross_entropy(logits, labels):
  """Per-example -log p_label, p_i = s(x_i) / sum_j s(x_j), s(x) = x + 1 (x >= 0), 1 / (1 - x) (x < 0).

  The reference computes in float64; we stay in the logits' dtype (jax's float64 needs the process-wide x64
  switch). StableMax has no exponentials, so s(x) neither overflows nor underflows in float32 for any
  |x| < ~1e38. The reference's 1e-30 in 1 / (1 - x + eps) is dropped: 1 - x >= 1 there. s is C^1 at 0
  (s(0) = s'(0) = 1 from both sides); the inner where keeps the untaken 1 / (1 - x) at x >= 1 out of the grad."""
  neg = jnp.where(logits < 0, logits, 0.0)
  s = jnp.where(logits >= 0, logits + 1, 1 / (1 - neg))
  s_label = jnp.take_along_axis(s, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
  return jnp.log(jnp.sum(s, axis=-1)) - jnp.log(s_label)


def recipe(config, remedy):
  """The config the cohort's optimiser reads for its remedy set (configs.Remedy): 'adam_l2' trains with Adam and
  coupled L2 (optimizer=adam_l2) instead of AdamW, 'warm0' with grokfast's warm-up (lr * k / 10 over the first 10
  steps, from 0) instead of the experiment's (the paper's: from 0.1 * lr over 9 steps)."""
  if not remedy.has("adam_l2", "warm0"):
    return config
  c = config.as_configdict().copy_and_resolve_references()  # as_configdict() is the frozen dict's own copy
  if remedy.has("adam_l2"):
    c.optimizer = "adam_l2"
  if remedy.has("warm0"):
    c.warmup_start, c.warmup_steps = 0.0, 10
  return ml_collections.FrozenConfigDict(c)


def transforms(remedy, hyper, max_window=MA_WINDOW):
  """The gradient transformations of a remedy set (configs.Remedy: grokfast_ema+orthograd, ...) in the order they
  act on the raw gradient before the optimiser: grokfast (EMA or MA), then ⊥Grad. 'stablemax' is a loss, 'decay' and 'adam_l2'
  weight decays and 'warm0' a warm-up (`recipe`): none of them transforms gradients. `hyper` holds the model's
  alpha, lamb and window (traced under vmap)."""
  out = []
  if remedy.has("grokfast_ema"):
    out.append(grokfast_ema(hyper["alpha"], hyper["lamb"]))
  if remedy.has("grokfast_ma"):
    out.append(grokfast_ma(hyper["window"], hyper["lamb"], max_window))
  if remedy.has("orthograd"):
    out.append(orthograd())
  return out
