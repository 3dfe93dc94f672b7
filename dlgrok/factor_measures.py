"""Measures of trained U, S, Vt factors in numpy (App. C; the paper's Figures 16-19): the live ranks, Gram matrices,
orthogonality, S's off-diagonal mass and the recomposed matrix's spectrum.
"""
import numpy as np


def live(u, s, vt, k=None):
  """The first k ranks of U (m, r), S (r, r), Vt (r, n): the only entries a rank-k model uses."""
  k = s.shape[-1] if k is None else int(k)
  return np.asarray(u)[:, :k], np.asarray(s)[:k, :k], np.asarray(vt)[:k]


def recompose(u, s, vt, k=None):
  u, s, vt = live(u, s, vt, k)
  return u @ s @ vt


def dense_factors(a):
  """U, diag(s), Vt of a dense matrix's reduced SVD: the 'Base' column of App. C."""
  u, s, vt = np.linalg.svd(np.asarray(a, dtype=np.float64), full_matrices=False)
  return u, np.diag(s), vt


def grams(u, s, vt, k=None):
  """U^T U and Vt Vt^T (k x k; identity when orthonormal; the paper's Figures 16-17) and |S|."""
  u, s, vt = live(u, s, vt, k)
  return u.T @ u, vt @ vt.T, np.abs(s)


def orthogonality(u, vt, k=None):
  """(||U^T U - I||_F, ||Vt Vt^T - I||_F) over the live ranks."""
  k = u.shape[-1] if k is None else int(k)
  u, vt = np.asarray(u)[:, :k], np.asarray(vt)[:k]
  eye = np.eye(k)
  return float(np.linalg.norm(u.T @ u - eye)), float(np.linalg.norm(vt @ vt.T - eye))


def offdiag_mass(s, k=None):
  """||offdiag(S)||_F / ||S||_F over the live k x k block (0 for a diagonal S)."""
  k = s.shape[-1] if k is None else int(k)
  s = np.asarray(s)[:k, :k]
  total = np.linalg.norm(s)
  return float(np.linalg.norm(s - np.diag(np.diag(s))) / total) if total > 0 else 0.0


def spectrum(u, s, vt, k=None):
  """Singular values of the recomposed matrix U_k S_k Vt_k (zero beyond the trained rank, Figure 19)."""
  return np.linalg.svd(recompose(u, s, vt, k), compute_uv=False)
