"""The stable rank on device, against the SVD's on known, random and trained matrices."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlgrok import spectral


def test_stable_rank_known_matrices():
  assert float(spectral.stable_rank(jnp.eye(5))) == pytest.approx(1.0)
  rank1 = jnp.outer(jnp.arange(1.0, 5.0), jnp.arange(1.0, 7.0))  # 4 x 6, rank 1
  assert float(spectral.stable_rank(rank1)) == pytest.approx(1 / 4, rel=1e-5)
  diag = jnp.diag(jnp.array([1.0, 2.0, 3.0, 4.0]))
  assert float(spectral.stable_rank(diag)) == pytest.approx((1 + 4 + 9 + 16) / 16 / 4, rel=1e-6)
  rect = jnp.zeros((3, 7)).at[0, 0].set(2.0).at[1, 1].set(1.0)  # ||.||_F^2 = 5, ||.||_2^2 = 4, min = 3
  assert float(spectral.stable_rank(rect)) == pytest.approx(5 / 4 / 3, rel=1e-6)
  assert float(spectral.stable_rank(jnp.zeros((4, 4)))) == 0.0


def svd_stable_rank(a):
  s = np.linalg.svd(np.asarray(a, np.float64), compute_uv=False)
  return float(np.sum(s**2) / s[0] ** 2 / min(a.shape))


def test_stable_rank_equals_the_svd_value_on_random_matrices():
  """No LAPACK SVD (it hung XLA:CPU): the Gram matrix's top eigenvalue by repeated squaring, within 1e-4 of
  the SVD value also where the top singular values (nearly) coincide."""
  rng = np.random.default_rng(0)
  for shape in ((99, 128), (128, 384), (784, 256), (256, 10), (5, 128), (64, 64)):
    a = rng.standard_normal(shape)
    u, _, vt = np.linalg.svd(a, full_matrices=False)
    k = min(shape)
    flat = np.ones(k)
    flat[1] = 1 - 1e-6  # two top singular values 1e-6 apart
    for m in (a, (u * flat) @ vt, (u * np.exp(-np.arange(k) / 3)) @ vt, a * np.linspace(1, 1.00001, shape[1])):
      m = m.astype(np.float32)
      assert float(spectral.stable_rank(jnp.asarray(m))) == pytest.approx(svd_stable_rank(m), rel=1e-4), shape


def test_stable_rank_equals_the_svd_value_on_trained_matrices(tmp_path):
  from conftest import tiny_config
  from dlgrok import decompose, train
  _, states = train.run(tiny_config(group="ffn", ranks="r4", steps=200.0, seeds=1), str(tmp_path))
  n = 0
  for s in states:
    dense = decompose.recompose(jax.tree_util.tree_map(lambda a: a[0], s["params"]))
    for leaf in jax.tree_util.tree_leaves(dense):
      if leaf.ndim == 2:
        n += 1
        assert float(spectral.stable_rank(leaf)) == pytest.approx(svd_stable_rank(leaf), rel=1e-4)
  assert n == 2 * 11  # tok, pos, out and 4 per block, in the baseline and the ffn model


def test_stable_rank_jit_vmap():
  stack = jnp.stack([jnp.eye(4), jnp.ones((4, 4)), jnp.diag(jnp.array([2.0, 2.0, 1.0, 0.0]))])
  out = jax.jit(jax.vmap(spectral.stable_rank))(stack)
  np.testing.assert_allclose(out, [1.0, 0.25, 9 / 4 / 4], rtol=1e-5)
  np.testing.assert_allclose(spectral.stable_rank(stack), out, rtol=1e-6)  # leading axes batch too


def test_stable_ranks_tree():
  params = {"tok_emb": {"embedding": jnp.eye(3)}, "out": {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)},
            "block_0": {"ffn": {"fc1": {"kernel": jnp.diag(jnp.array([1.0, 2.0]))}}}}
  sr = jax.jit(spectral.stable_ranks)(params)
  assert set(sr) == {"tok_emb", "out", "block_0/ffn/fc1"}
  assert float(sr["tok_emb"]) == pytest.approx(1.0)
  assert float(sr["out"]) == pytest.approx(0.5)
  assert float(sr["block_0/ffn/fc1"]) == pytest.approx(5 / 4 / 2)
  stacked = jax.tree_util.tree_map(lambda x: jnp.stack([x, 2 * x]), params)
  sr2 = spectral.stable_ranks(stacked, batch_dims=1)
  np.testing.assert_allclose(sr2["block_0/ffn/fc1"], [0.625, 0.625], rtol=1e-6)
  np.testing.assert_allclose(jax.vmap(spectral.stable_ranks)(stacked)["out"], [0.5, 0.5], rtol=1e-6)
