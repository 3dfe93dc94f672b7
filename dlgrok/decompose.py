"""The tree transform: factorise chosen 2-D leaves into {U, S, Vt}, recompose them, count and compress.

Leaves are selected by regexes on the '/'-joined parameter path; the first pattern that fully matches wins.
A factorised leaf is a plain dict {'U': (m, r), 'S': (r, r), 'Vt': (r, n)} initialised from the SVD of the
leaf itself. Each model carries its rank k <= r per leaf as data: recompose masks S to its top-left k x k block,
so models of different ranks share shapes (and vmap), and the masked entries get exactly zero gradient.
"""
import math
import re
from fractions import Fraction

import jax
import jax.numpy as jnp

FACTOR_KEYS = ("S", "U", "Vt")


class DecomposeError(ValueError):
  """A selection or rank that does not fit the parameter tree."""


def is_factor(x):
  return isinstance(x, dict) and tuple(sorted(x)) == FACTOR_KEYS


def as_usv(factor):
  """(U, S, Vt) of a factorised leaf."""
  return factor["U"], factor["S"], factor["Vt"]


def path_str(path):
  return jax.tree_util.keystr(path, simple=True, separator="/")


def layer_name(path):
  """The layer a leaf belongs to: its path without the leaf's own name ('block_0/ffn/fc1/kernel' -> 'block_0/ffn/fc1')."""
  return path.rsplit("/", 1)[0] if "/" in path else path


def leaf_paths(params):
  """'/'-joined paths of all leaves (a factorised leaf counts as one) in tree order."""
  flat, _ = jax.tree_util.tree_flatten_with_path(params, is_leaf=is_factor)
  return [path_str(p) for p, _ in flat]


def select(params, patterns):
  """{path: pattern} for every 2-D leaf fully matched by one of `patterns` (first match wins).

  Only 2-D leaves are candidates; a pattern that matches none of them is an error.
  """
  chosen, used = {}, set()
  flat, _ = jax.tree_util.tree_flatten_with_path(params, is_leaf=is_factor)
  matrices = [(path_str(p), leaf) for p, leaf in flat if len(_shape(leaf)) == 2]
  for name, leaf in matrices:
    for pat in patterns:
      if re.fullmatch(pat, name):
        used.add(pat)
        chosen[name] = pat
        break
  for pat in patterns:
    if pat not in used:
      names = ", ".join(n for n, _ in matrices)
      raise DecomposeError(f"pattern {pat!r} matches no 2-D parameter; 2-D leaves are: {names}")
  return chosen


def _shape(leaf):
  if is_factor(leaf):
    return (leaf["U"].shape[-2], leaf["Vt"].shape[-1])
  return tuple(leaf.shape)


def full_rank(shape):
  return min(shape[-2], shape[-1])


def pct_to_rank(pct, full):
  """Percent of full rank -> rank, rounding half up: floor(pct/100 * full + 1/2)."""
  pct = Fraction(str(pct))
  if not 0 < pct <= 100:
    raise DecomposeError(f"rank percent p{pct} is outside (0, 100]")
  return max(1, math.floor(pct * full / 100 + Fraction(1, 2)))


def check_rank(name, k, shape):
  full = full_rank(shape)
  if not 1 <= k <= full:
    raise DecomposeError(f"rank {k} for {name!r} of shape {tuple(shape)} is outside the allowed range 1..{full}")
  return k


def factorise_leaf(a, r):
  """{U, S, Vt} of rank r from the reduced SVD of `a` (S starts diagonal)."""
  u, s, vt = jnp.linalg.svd(a, full_matrices=False)  # works on a leading batch axis too
  return {"U": u[..., :r], "S": s[..., :r, None] * jnp.eye(r, dtype=a.dtype), "Vt": vt[..., :r, :]}


def factorise(params, max_ranks):
  """Replaces each leaf named in `max_ranks` ({path: r}) by its rank-r factors; other leaves come back as they are."""
  missing = set(max_ranks) - set(leaf_paths(params))
  if missing:
    raise DecomposeError(f"no parameter at {sorted(missing)}; leaves are: {', '.join(leaf_paths(params))}")

  def f(p, leaf):
    name = path_str(p)
    if name not in max_ranks:
      return leaf
    check_rank(name, max_ranks[name], leaf.shape[-2:])
    return factorise_leaf(leaf, max_ranks[name])

  return jax.tree_util.tree_map_with_path(f, params)


def rank_mask(r, k):
  return jnp.arange(r) < k


def recompose_leaf(factor, k=None):
  """U (S * m m^T) Vt with m = [i < k]; k=None keeps all r ranks."""
  s = factor["S"]
  if k is not None:
    m = rank_mask(s.shape[-1], k).astype(s.dtype)
    s = s * m[:, None] * m[None, :]
  return factor["U"] @ s @ factor["Vt"]


def recompose(params, ranks=None):
  """Dense tree: every factorised leaf recomposed at its rank in `ranks` ({path: k}, missing = all of r)."""
  ranks = ranks or {}

  def f(p, leaf):
    if not is_factor(leaf):
      return leaf
    return recompose_leaf(leaf, ranks.get(path_str(p)))

  return jax.tree_util.tree_map_with_path(f, params, is_leaf=is_factor)


def mask_updates(updates, ranks):
  """Zeroes the rows/columns of U, S, Vt beyond each leaf's rank, so masked entries never move."""

  def f(p, leaf):
    if not is_factor(leaf):
      return leaf
    k = ranks.get(path_str(p))
    if k is None:
      return leaf
    m = rank_mask(leaf["S"].shape[-1], k)
    return {"U": leaf["U"] * m[None, :], "S": leaf["S"] * (m[:, None] & m[None, :]), "Vt": leaf["Vt"] * m[:, None]}

  return jax.tree_util.tree_map_with_path(f, updates, is_leaf=is_factor)


def factor_params(m, n, k):
  """Trained parameters of a rank-k factorisation of an m x n matrix: mk + k^2 + kn."""
  return m * k + k * k + k * n


def inference_params(m, n, k):
  """Parameters of the rank-k SVD-compressed matrix for inference: k(m+n), or mn when that is smaller."""
  return min(k * (m + n), m * n)


def break_even_rank(m, n):
  """Largest k with mk + k^2 + kn <= mn (Eq. 5 with its sign corrected)."""
  k = (-(m + n) + math.isqrt((m + n) ** 2 + 4 * m * n)) // 2
  while factor_params(m, n, k + 1) <= m * n:
    k += 1
  while k > 0 and factor_params(m, n, k) > m * n:
    k -= 1
  return k


def count_params(params, ranks=None):
  """Per-leaf and total {'trained', 'inference', 'dense'} counts; factorised leaves counted at their rank k."""
  ranks = ranks or {}
  rows = {}
  flat, _ = jax.tree_util.tree_flatten_with_path(params, is_leaf=is_factor)
  for p, leaf in flat:
    name = path_str(p)
    if is_factor(leaf):
      m, n = _shape(leaf)
      k = int(ranks.get(name, leaf["S"].shape[-1]))
      rows[name] = {"trained": factor_params(m, n, k), "inference": inference_params(m, n, k), "dense": m * n}
    else:
      size = math.prod(leaf.shape)
      rows[name] = {"trained": size, "inference": size, "dense": size}
  total = {key: sum(r[key] for r in rows.values()) for key in ("trained", "inference", "dense")}
  return rows, total


def compress(a, k):
  """Best rank-k approximation of a recomposed matrix (exact when its rank <= k)."""
  u, s, vt = jnp.linalg.svd(a, full_matrices=False)
  return (u[:, :k] * s[:k]) @ vt[:k, :]
