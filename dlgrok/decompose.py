"""The tree transform: factorise chosen 2-D leaves into {U, S, Vt}, recompose them, count and compress.

Leaves are selected by regexes on the '/'-joined parameter path; the first pattern that fully matches wins.
A factorised leaf is a plain dict {'U': (m, r), 'S': (r, r), 'Vt': (r, n)} initialised from the SVD of the
leaf itself. Each model carries its rank k <= r per leaf as data: recompose masks S to its top-left k x k block,
so models of different ranks share shapes (and vmap), and the masked entries get exactly zero gradient.

Factorisations (the lab's ablations, one per cohort): `usv` as above; `uv`, two factors {'U': U sqrt(S), 'Vt':
sqrt(S) Vt} and no middle matrix; `diag`, {'U', 's': (r,), 'Vt'} with only S's diagonal trained; `s`, the usv
form with U and Vt frozen at their SVD initialisation (mask_updates zeroes their updates).
"""
import math
import re
from fractions import Fraction

import jax
import jax.numpy as jnp

from dlgrok.configs import FACTORISATIONS
FORMS = (("S", "U", "Vt"), ("U", "Vt"), ("U", "Vt", "s"))  # sorted keys of a factorised leaf: usv and s, uv, diag


class DecomposeError(ValueError):
  """A selection or rank that does not fit the parameter tree."""


def is_factor(x):
  return isinstance(x, dict) and tuple(sorted(x)) in FORMS


def as_usv(factor):
  """(U, S, Vt) of any factorisation's leaf, S as a full r x r matrix (identity for uv, diagonal for diag)."""
  u, vt = factor["U"], factor["Vt"]
  if "S" in factor:
    return u, factor["S"], vt
  r = u.shape[-1]
  return u, (jnp.diag(factor["s"]) if "s" in factor else jnp.eye(r, dtype=u.dtype)), vt


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


def factorise_leaf(a, r, factorisation="usv"):
  """The factorisation's rank-r factors from the reduced SVD of `a` (S starts diagonal)."""
  u, s, vt = jnp.linalg.svd(a, full_matrices=False)  # works on a leading batch axis too
  u, s, vt = u[..., :r], s[..., :r], vt[..., :r, :]
  if factorisation == "uv":
    root = jnp.sqrt(s)
    return {"U": u * root[..., None, :], "Vt": root[..., :, None] * vt}
  if factorisation == "diag":
    return {"U": u, "s": s, "Vt": vt}
  return {"U": u, "S": s[..., :, None] * jnp.eye(r, dtype=a.dtype), "Vt": vt}


def factorise(params, max_ranks, factorisation="usv"):
  """Replaces each leaf named in `max_ranks` ({path: r}) by its rank-r factors of `factorisation`; other leaves
  come back as they are."""
  if factorisation not in FACTORISATIONS:
    raise DecomposeError(f"factorisation {factorisation!r}; allowed: {', '.join(FACTORISATIONS)}")
  missing = set(max_ranks) - set(leaf_paths(params))
  if missing:
    raise DecomposeError(f"no parameter at {sorted(missing)}; leaves are: {', '.join(leaf_paths(params))}")

  def f(p, leaf):
    name = path_str(p)
    if name not in max_ranks:
      return leaf
    check_rank(name, max_ranks[name], leaf.shape[-2:])
    return factorise_leaf(leaf, max_ranks[name], factorisation)

  return jax.tree_util.tree_map_with_path(f, params)


def rank_mask(r, k):
  return jnp.arange(r) < k


def recompose_leaf(factor, k=None):
  """U (S * m m^T) Vt with m = [i < k] (uv: (U * m) Vt; diag: (U * s m) Vt); k=None keeps all r ranks."""
  u = factor["U"]
  m = None if k is None else rank_mask(u.shape[-1], k).astype(u.dtype)
  if "S" in factor:
    s = factor["S"] if m is None else factor["S"] * m[:, None] * m[None, :]
    return u @ s @ factor["Vt"]
  scale = factor["s"] if "s" in factor else None
  scale = m if scale is None else (scale if m is None else scale * m)
  return (u if scale is None else u * scale[None, :]) @ factor["Vt"]


def recompose(params, ranks=None):
  """Dense tree: every factorised leaf recomposed at its rank in `ranks` ({path: k}, missing = all of r)."""
  ranks = ranks or {}

  def f(p, leaf):
    if not is_factor(leaf):
      return leaf
    return recompose_leaf(leaf, ranks.get(path_str(p)))

  return jax.tree_util.tree_map_with_path(f, params, is_leaf=is_factor)


def mask_updates(updates, ranks, factorisation="usv"):
  """Zeroes the rows/columns of the factors beyond each leaf's rank, so masked entries never move; for the `s`
  factorisation also every update of U and Vt (frozen at their SVD initialisation)."""

  def f(p, leaf):
    if not is_factor(leaf):
      return leaf
    k = ranks.get(path_str(p))
    out = dict(leaf)
    if k is not None:
      m = rank_mask(leaf["U"].shape[-1], k)
      out.update(U=leaf["U"] * m[None, :], Vt=leaf["Vt"] * m[:, None])
      if "S" in leaf:
        out["S"] = leaf["S"] * (m[:, None] & m[None, :])
      if "s" in leaf:
        out["s"] = leaf["s"] * m
    if factorisation == "s":
      out.update(U=jnp.zeros_like(leaf["U"]), Vt=jnp.zeros_like(leaf["Vt"]))
    return out

  return jax.tree_util.tree_map_with_path(f, updates, is_leaf=is_factor)


def factor_params(m, n, k, factorisation="usv"):
  """Trained parameters of a rank-k factorisation of an m x n matrix: mk + k^2 + kn (usv); mk + kn (uv);
  mk + k + kn (diag); k^2 (s: U and Vt frozen)."""
  return {"usv": m * k + k * k + k * n, "uv": m * k + k * n, "diag": m * k + k + k * n, "s": k * k}[factorisation]


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


def count_params(params, ranks=None, factorisation="usv"):
  """Per-leaf and total {'trained', 'inference', 'dense'} counts; factorised leaves counted at their rank k as
  `factorisation` trains them."""
  ranks = ranks or {}
  rows = {}
  flat, _ = jax.tree_util.tree_flatten_with_path(params, is_leaf=is_factor)
  for p, leaf in flat:
    name = path_str(p)
    if is_factor(leaf):
      m, n = _shape(leaf)
      k = int(ranks.get(name, leaf["U"].shape[-1]))
      rows[name] = {"trained": factor_params(m, n, k, factorisation), "inference": inference_params(m, n, k),
                    "dense": m * n}
    else:
      size = math.prod(leaf.shape)
      rows[name] = {"trained": size, "inference": size, "dense": size}
  total = {key: sum(r[key] for r in rows.values()) for key in ("trained", "inference", "dense")}
  return rows, total


def compress(a, k):
  """Best rank-k approximation of a recomposed matrix (exact when its rank <= k)."""
  u, s, vt = jnp.linalg.svd(a, full_matrices=False)
  return (u[:, :k] * s[:k]) @ vt[:k, :]
