"""The App. C measures of U, S, Vt on inputs with known answers."""
import numpy as np
import pytest

from dlgrok import factor_measures


def test_factor_measures():
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 3)))
  vt = np.eye(3, 5)
  s = np.diag([5.0, 3.0, 7.0])
  assert factor_measures.orthogonality(q, vt) == pytest.approx((0.0, 0.0), abs=1e-12)
  assert factor_measures.orthogonality(2 * q, vt, k=2) == pytest.approx((3 * np.sqrt(2), 0.0))
  assert factor_measures.offdiag_mass(s) == 0.0
  junk = np.array([[3.0, 0.0, 9.0], [4.0, 0.0, 9.0], [9.0, 9.0, 9.0]])  # only the top-left 2 x 2 is live
  assert factor_measures.offdiag_mass(junk, k=2) == pytest.approx(0.8)
  sv = factor_measures.spectrum(q, s, vt, k=2)  # the third rank (7) is masked out
  np.testing.assert_allclose(sv, [5.0, 3.0, 0.0, 0.0, 0.0], atol=1e-12)  # 6 x 5: five values
  utu, vvt, abs_s = factor_measures.grams(2 * q, -s, vt, k=2)
  np.testing.assert_allclose(utu, 4 * np.eye(2), atol=1e-12)
  np.testing.assert_allclose(vvt, np.eye(2))
  np.testing.assert_allclose(abs_s, np.diag([5.0, 3.0]))
  a = np.outer([1.0, 2.0], [3.0, 4.0, 0.0])
  u, sd, vt2 = factor_measures.dense_factors(a)
  np.testing.assert_allclose(u @ sd @ vt2, a, atol=1e-12)
  np.testing.assert_allclose(np.diag(sd), [np.sqrt(5) * 5, 0.0], atol=1e-12)
