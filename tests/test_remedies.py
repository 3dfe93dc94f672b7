"""Grokfast EMA/MA, ⊥Grad and StableMax against numpy re-implementations of their formulas."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlgrok import remedies


def grad_seq(steps, seed=0):
  rng = np.random.default_rng(seed)
  return [{"a": rng.normal(size=3).astype(np.float32), "b": {"S": rng.normal(size=(2, 2)).astype(np.float32)}}
          for _ in range(steps)]


def run(tx, grads, params):
  state, outs = tx.init(params), []
  for g in grads:
    u, state = tx.update(g, state, params)
    outs.append(u)
  return outs, state


def leaves(tree):
  return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def test_grokfast_ema_matches_the_formula_from_the_first_step():
  alpha, lamb = 0.8, 2.5
  grads = grad_seq(5)
  outs, state = run(remedies.grokfast_ema(alpha, lamb), grads, grads[0])
  h = None
  for g, out in zip(grads, outs):
    g = leaves(g)
    h = g if h is None else [alpha * hi + (1 - alpha) * gi for hi, gi in zip(h, g)]  # h_1 = g_1
    for want, got in zip([gi + lamb * hi for gi, hi in zip(g, h)], leaves(out)):
      np.testing.assert_allclose(got, want, rtol=1e-6)
  for want, got in zip(h, leaves(state.h)):
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_grokfast_ma_warmup_then_window_mean_and_per_model_window():
  grads = grad_seq(6, seed=1)
  outs, _ = run(remedies.grokfast_ma(3, 5.0, max_window=5), grads, grads[0])
  for t, out in enumerate(outs):
    g = leaves(grads[t])
    if t < 2:
      want = g
    else:
      window = [leaves(x) for x in grads[t - 2:t + 1]]
      want = [gi + 5.0 * np.mean([w[i] for w in window], axis=0) for i, gi in enumerate(g)]
    for w, got in zip(want, leaves(out)):
      np.testing.assert_allclose(got, w, rtol=1e-6)

  stacked = jax.tree.map(lambda *x: jnp.stack(x), *grads)

  def one(window, lamb):
    tx = remedies.grokfast_ma(window, lamb, max_window=5)
    def step(state, g):
      u, state = tx.update(g, state, grads[0])
      return state, u
    return jax.lax.scan(step, tx.init(grads[0]), stacked)[1]

  both = jax.vmap(one)(jnp.array([2, 3]), jnp.array([5.0, 1.0]))
  for m, (window, lamb) in enumerate([(2, 5.0), (3, 1.0)]):
    alone = run(remedies.grokfast_ma(window, lamb, max_window=5), grads, grads[0])[0]
    for t in range(6):
      for want, got in zip(leaves(alone[t]), leaves(jax.tree.map(lambda x: x[m, t], both))):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_grokfast_ma_rejects_a_window_above_max():
  with pytest.raises(ValueError, match="window"):
    remedies.grokfast_ma(6, 1.0, max_window=5)


def test_orthograd_projects_and_keeps_the_norm():
  rng = np.random.default_rng(2)
  params = {"w": rng.normal(size=(4, 3)).astype(np.float32), "zero": np.zeros(5, np.float32)}
  grads = {"w": rng.normal(size=(4, 3)).astype(np.float32), "zero": rng.normal(size=5).astype(np.float32)}
  out, _ = remedies.orthograd().update(grads, optax.EmptyState(), params)
  w, g, got = (np.asarray(x["w"], np.float64) for x in (params, grads, out))
  perp = g - np.sum(w * g) / np.sum(w * w) * w
  np.testing.assert_allclose(got, perp * np.linalg.norm(g) / np.linalg.norm(perp), rtol=1e-5, atol=1e-7)
  assert abs(np.sum(w * got)) <= 1e-6 * np.linalg.norm(w) * np.linalg.norm(g)
  np.testing.assert_allclose(np.linalg.norm(got), np.linalg.norm(g), rtol=1e-6)
  np.testing.assert_allclose(out["zero"], grads["zero"], rtol=1e-6)  # w = 0: nothing to project out
  # a gradient along w has nothing orthogonal to it: the update is zero (the reference's 0 / 1e-30 scale), not
  # the gradient itself nor NaN
  parallel, _ = remedies.orthograd().update({"w": 2 * params["w"]}, None, {"w": params["w"]})
  assert np.array_equal(parallel["w"], np.zeros_like(params["w"]))
  with pytest.raises(ValueError, match="parameters"):
    remedies.orthograd().update(grads, optax.EmptyState())


def stablemax_loss_np(x, y):
  s = np.where(x >= 0, x + 1, 1 / (1 - np.minimum(x, 0)))
  return -np.log(np.take_along_axis(s, y[:, None], -1)[:, 0] / s.sum(-1))


def test_stablemax_cross_entropy_value_and_gradient():
  x = np.array([[-2.0, 0.0, 1.5, 1.0], [0.0, -0.7, -3.0, 2.0], [4.0, 0.0, 0.0, -1.0]], np.float32)
  y = np.array([1, 3, 2])
  # 1.0: the untaken 1 / (1 - x) is inf there, its grad must not leak
  loss = remedies.stablemax_cross_entropy(jnp.asarray(x), jnp.asarray(y))
  np.testing.assert_allclose(loss, stablemax_loss_np(x.astype(np.float64), y), rtol=1e-6)

  grad = np.asarray(jax.grad(lambda l: remedies.stablemax_cross_entropy(l, y).mean())(jnp.asarray(x)))
  assert np.all(np.isfinite(grad))
  x64, eps, fd = x.astype(np.float64), 1e-4, np.zeros_like(x, np.float64)
  for i in np.ndindex(x.shape):
    d = np.zeros_like(x64)
    d[i] = eps
    fd[i] = (stablemax_loss_np(x64 + d, y).mean() - stablemax_loss_np(x64 - d, y).mean()) / (2 * eps)
  np.testing.assert_allclose(grad, fd, rtol=1e-3, atol=1e-7)


def test_ema_with_adamw_under_vmap_matches_each_model_alone():
  grads = grad_seq(3, seed=3)
  params = grad_seq(1, seed=4)[0]
  hyper = [(0.98, 2.0), (0.5, 0.0), (0.9, 5.0)]

  def train(alpha, lamb):
    tx = optax.chain(remedies.grokfast_ema(alpha, lamb), optax.adamw(1e-3))
    p, state = params, tx.init(params)
    for g in grads:
      u, state = tx.update(g, state, p)
      p = optax.apply_updates(p, u)
    return p, state

  batched = jax.vmap(train)(*(jnp.array(h, jnp.float32) for h in zip(*hyper)))
  for m, (alpha, lamb) in enumerate(hyper):
    alone = train(alpha, lamb)
    for want, got in zip(leaves(alone), leaves(jax.tree.map(lambda x: x[m], batched))):
      np.testing.assert_allclose(got, want, rtol=1e-6)


def torch_adam(params, grads, lr, wd, b1=0.9, b2=0.98, eps=1e-8):
  """PyTorch's Adam(weight_decay=wd) in numpy: wd * p joins the gradient before the moments (coupled L2)."""
  p, m, v, out = np.asarray(params, np.float64), 0.0, 0.0, []
  for t, g in enumerate(grads, 1):
    g = np.asarray(g, np.float64) + wd * p
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    p = p - lr[t - 1] * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    out.append(p)
  return out


def test_adam_l2_and_grokfasts_warmup_match_pytorchs_adam_and_lambdalr():
  """The adam_l2 + warm0 recipe: Adam with wd * p added to the gradient, lr * min(1, k / 10) from step 0."""
  from dlgrok import configs
  from dlgrok.tasks import modp
  c = configs.load(configs.EXPERIMENTS + "/mod97.py", "")
  base = ml_frozen(c)
  rc = remedies.recipe(base, configs.Remedy.parse("warm0+grokfast_ema+adam_l2"))
  assert (rc.optimizer, rc.warmup_start, rc.warmup_steps) == ("adam_l2", 0.0, 10)
  assert remedies.recipe(base, configs.Remedy.parse("grokfast_ema")) is base
  rng = np.random.default_rng(1)
  p0 = rng.normal(size=5).astype(np.float32)
  grads = [rng.normal(size=5).astype(np.float32) for _ in range(13)]
  tx, p = modp.TASK.optimizer(rc, 0.3), jnp.asarray(p0)
  state, got = tx.init(p), []
  for g in grads:
    u, state = tx.update(jnp.asarray(g), state, p)
    p = optax.apply_updates(p, u)
    got.append(np.asarray(p))
  lr = [1e-3 * min(1.0, k / 10) for k in range(13)]  # LambdaLR(lambda k: 1 if k > 10 else k / 10)
  want = torch_adam(p0, grads, lr, 0.3)
  np.testing.assert_allclose(got[0], p0, rtol=0, atol=0)  # step 0 at learning rate 0
  np.testing.assert_allclose(np.stack(got), np.stack(want), rtol=0, atol=2e-6)
  paper = torch_adam(p0, grads, [1e-3 * min(1.0, 0.1 + 0.1 * k) for k in range(13)], 0.0)
  assert np.max(np.abs(np.stack(got) - np.stack(paper))) > 1e-4  # the two recipes really differ


def ml_frozen(c):
  import ml_collections
  return ml_collections.FrozenConfigDict(c)


@pytest.mark.parametrize("bad, match", [("decay+adam_l2", "alternatives"), ("orthograd+l2", "unknown token")])
def test_recipe_words_are_checked(bad, match):
  from dlgrok import configs
  with pytest.raises(configs.ConfigError, match=match):
    configs.load(configs.EXPERIMENTS + "/remedies.py", bad)
