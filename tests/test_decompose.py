import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import experiment
from dlgrok import cohorts
from dlgrok import decompose as D


def test_table1_token_embedding_counts():
  """The paper's model holds a 99 x 128 token table (vocabulary p + 2): 12672 parameters dense."""
  plan = cohorts.resolve(experiment("mod97", "tok,r12"))
  model = plan.task.model(plan.config, (), plan.data)
  x = plan.task.prepare(jnp.asarray(plan.data.x[:1]))
  params = jax.eval_shape(lambda k: D.factorise(model.init(k, x)["params"], plan.cohorts[1].max_ranks),
                          jax.random.PRNGKey(0))
  table = D.count_params(params, plan.cohorts[1].models[0].layer_ranks)[0]["tok_emb/embedding"]
  assert table == {"dense": 12672, "trained": 2868, "inference": D.inference_params(99, 128, 12)}
  assert [D.factor_params(99, 128, k) for k in (12, 25, 50, 74, 99)] == [2868, 6300, 13850, 22274, 32274]


def test_table2_position_embedding_counts():
  assert [D.factor_params(5, 128, k) for k in (1, 2, 3, 4, 5)] == [134, 270, 408, 548, 690]


def test_break_even_rank():
  k = D.break_even_rank(99, 128)
  assert k == 46
  assert D.factor_params(99, 128, 46) <= 99 * 128 < D.factor_params(99, 128, 47)
  for m, n in [(5, 128), (128, 512), (128, 99), (7, 7)]:
    k = D.break_even_rank(m, n)
    assert D.factor_params(m, n, k) <= m * n < D.factor_params(m, n, k + 1)


@pytest.mark.parametrize("full,ranks", [(99, [12, 25, 50, 74, 99]), (128, [16, 32, 64, 96, 128]),
                                        (61, [8, 15, 31, 46, 61])])
def test_percent_to_rank(full, ranks):
  assert [D.pct_to_rank(p, full) for p in (12.5, 25, 50, 75, 100)] == ranks


def test_bad_percent_and_rank():
  with pytest.raises(D.DecomposeError, match="outside"):
    D.pct_to_rank(150, 99)
  with pytest.raises(D.DecomposeError, match=r"rank 100 .*'tok'.*1\.\.99"):
    D.check_rank("tok", 100, (99, 128))
  with pytest.raises(D.DecomposeError, match=r"1\.\.5"):
    D.check_rank("pos", 0, (5, 128))


def params():
  k = jax.random.split(jax.random.PRNGKey(0), 3)
  return {"emb": {"embedding": jax.random.normal(k[0], (9, 6))},
          "fc": {"kernel": jax.random.normal(k[1], (6, 4)), "bias": jax.random.normal(k[2], (4,))}}


def test_selection_and_untouched_leaves():
  p = params()
  assert D.select(p, [r"fc/kernel", r".*"]) == {"fc/kernel": "fc/kernel", "emb/embedding": ".*"}
  f = D.factorise(p, {"fc/kernel": 3})
  assert f["emb"]["embedding"] is p["emb"]["embedding"]
  assert f["fc"]["bias"] is p["fc"]["bias"]
  assert set(f["fc"]["kernel"]) == {"U", "S", "Vt"}
  assert [f["fc"]["kernel"][k].shape for k in ("U", "S", "Vt")] == [(6, 3), (3, 3), (3, 4)]


def test_selection_errors():
  with pytest.raises(D.DecomposeError, match=r"'nothing/.*' matches no 2-D parameter; 2-D leaves are: emb/"):
    D.select(params(), ["nothing/.*"])
  with pytest.raises(D.DecomposeError, match="'fc/bias' matches no 2-D parameter"):
    D.select(params(), ["fc/bias"])


def test_recompose_full_rank_and_diagonal_s():
  p = params()
  f = D.factorise(p, {"emb/embedding": 6, "fc/kernel": 4})
  s = np.asarray(f["emb"]["embedding"]["S"])
  assert np.count_nonzero(s - np.diag(np.diag(s))) == 0
  dense = D.recompose(f)
  for name in ("emb/embedding", "fc/kernel"):
    a, b = name.split("/")
    assert np.max(np.abs(dense[a][b] - p[a][b])) < 1e-5


def test_rank_mask_equals_truncation_and_zero_gradient():
  a = params()["emb"]["embedding"]
  big = D.factorise_leaf(a, 6)
  small = D.factorise_leaf(a, 2)
  np.testing.assert_allclose(D.recompose_leaf(big, 2), D.recompose_leaf(small), atol=1e-5)
  g = jax.grad(lambda f: jnp.sum(jnp.sin(D.recompose_leaf(f, 2))))(big)
  assert np.all(np.asarray(g["U"])[:, 2:] == 0)
  assert np.all(np.asarray(g["Vt"])[2:, :] == 0)
  gs = np.asarray(g["S"])
  assert np.all(gs[2:, :] == 0) and np.all(gs[:, 2:] == 0)
  assert np.all(np.asarray(g["U"])[:, :2] != 0)


def test_counts_whole_model():
  f = D.factorise(params(), {"emb/embedding": 2})
  rows, total = D.count_params(f, {"emb/embedding": 2})
  assert rows["emb/embedding"] == {"trained": 9 * 2 + 4 + 2 * 6, "inference": 2 * 15, "dense": 54}
  assert total == {"trained": 34 + 24 + 4, "inference": 30 + 24 + 4, "dense": 54 + 24 + 4}


def test_compress_exact_at_trained_rank():
  k = jax.random.split(jax.random.PRNGKey(1), 2)
  a = jax.random.normal(k[0], (20, 3)) @ jax.random.normal(k[1], (3, 30))
  assert np.max(np.abs(D.compress(a, 3) - a)) < 1e-4
  assert np.max(np.abs(D.compress(a, 2) - a)) > 1e-2
  assert D.inference_params(20, 30, 3) == 150 and D.inference_params(5, 5, 4) == 25
