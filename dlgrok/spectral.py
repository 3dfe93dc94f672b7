"""Spectral measures of weight matrices on device (App. D): the normalised stable rank the training loop records
at every evaluation, from a top eigenvalue by repeated squaring (matmuls only).
"""
import jax
import jax.numpy as jnp

from dlgrok import decompose

SQUARINGS = 20  # top eigenvalue from G^(2^20): relative error <= ~1 / (e 2^20) per eigenvalue near the top


def top_eigenvalue(g):
  """Largest eigenvalue of symmetric PSD matrices g (..., n, n) by repeated squaring, matmuls only: with P the
  trace-normalised G^(2^k), tr(P G) = sum l^(2^k+1) / sum l^(2^k) -> l_max. No LAPACK (a batched SVD hangs
  XLA:CPU's thread pool and is slow on GPUs); exactly equal top eigenvalues cost no accuracy."""
  mm = lambda a, b: jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)
  trace = lambda m: jnp.trace(m, axis1=-2, axis2=-1)[..., None, None]
  safe = lambda t: jnp.where(t > 0, t, 1.0)
  p = g / safe(trace(g))
  for _ in range(SQUARINGS):
    p = mm(p, p)
    p = p / safe(trace(p))
  return jnp.sum(p * g, axis=(-2, -1))  # tr(P G), P and G symmetric


def stable_rank(a):
  """Normalised stable rank ||A||_F^2 / ||A||_2^2 / min(m, n) of the last two axes (0 for a zero matrix);
  ||A||_2^2 is the top eigenvalue of the smaller Gram matrix."""
  a = jnp.asarray(a, jnp.promote_types(a.dtype, jnp.float32))
  at = jnp.swapaxes(a, -1, -2)
  g = jnp.matmul(at, a, precision=jax.lax.Precision.HIGHEST) if a.shape[-1] <= a.shape[-2] else \
      jnp.matmul(a, at, precision=jax.lax.Precision.HIGHEST)
  top = top_eigenvalue(g)
  sr = jnp.sum(a * a, axis=(-2, -1)) / jnp.where(top > 0, top, 1.0) / min(a.shape[-2:])
  return jnp.where(top > 0, sr, 0.0)


def stable_ranks(params, batch_dims=0):
  """{layer name: stable rank} for every leaf with 2 + batch_dims axes of a dense (recomposed) tree.

  Layers are named by decompose.layer_name ('tok_emb/embedding' -> 'tok_emb'; pass the tree below any 'params'
  collection); with batch_dims=1 the leaves carry a leading model axis and values have shape (M,).
  """
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    if jnp.ndim(leaf) == 2 + batch_dims:
      out[decompose.layer_name(decompose.path_str(path))] = stable_rank(leaf)
  return out
