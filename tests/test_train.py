import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import Runner, experiment, tiny_config
from dlgrok import cohorts, configs, decompose, loop, memory, metrics, run_config, train

runner = Runner


def logits(r, params, i):
  p = jax.tree_util.tree_map(lambda a: a[i], params)
  ranks = {k: v[i] for k, v in r.ranks.items()}
  return r.model.apply({"params": decompose.recompose(p, ranks)}, r.x[:256])


def test_full_rank_equals_baseline_at_step_0():
  with jax.default_matmul_precision("highest"):
    for group in ("all", "tok,pos,out"):
      c = experiment("mod97", f"{group},p100,seeds=2")
      base, dec = runner(c, 0), runner(c, 1)
      pb, pd = base.init()["params"], dec.init()["params"]
      assert set(dec.ranks) and all(int(v[0]) == dec.cohort.max_ranks[k] for k, v in dec.ranks.items())
      for i in range(2):
        diff = jnp.max(jnp.abs(logits(base, pb, i) - logits(dec, pd, i)))
        assert diff < 1e-5, (group, i, diff)


def test_masked_entries_frozen_and_rank_k_equals_direct_model():
  mixed = runner(tiny_config(group="ffn", ranks="r4,r16", seeds=1, weight_decay=0.1))
  direct = runner(tiny_config(group="ffn", ranks="r4", seeds=1, weight_decay=0.1))
  s0 = mixed.init()
  before = jax.tree_util.tree_map(np.asarray, s0["params"])
  sm = mixed.chunk(s0, jnp.int32(0), jnp.int32(20))
  sd = direct.chunk(direct.init(), jnp.int32(0), jnp.int32(20))
  fc1 = "block_0/ffn/fc1/kernel"
  assert int(mixed.ranks[fc1][0]) == 4 and int(mixed.ranks[fc1][1]) == 16
  after = sm["params"]["block_0"]["ffn"]["fc1"]["kernel"]
  b = before["block_0"]["ffn"]["fc1"]["kernel"]
  np.testing.assert_array_equal(np.asarray(after["U"])[0, :, 4:], b["U"][0, :, 4:])
  np.testing.assert_array_equal(np.asarray(after["Vt"])[0, 4:, :], b["Vt"][0, 4:, :])
  s_after, s_before = np.asarray(after["S"])[0], b["S"][0]
  np.testing.assert_array_equal(s_after[4:, :], s_before[4:, :])
  np.testing.assert_array_equal(s_after[:, 4:], s_before[:, 4:])
  assert np.any(np.asarray(after["U"])[0, :, :4] != b["U"][0, :, :4])  # the live part did train
  assert np.any(np.asarray(after["U"])[1, :, 4:] != b["U"][1, :, 4:])  # the rank-16 model uses more
  np.testing.assert_allclose(logits(mixed, sm["params"], 0), logits(direct, sd["params"], 0), atol=1e-4)


def strip(rows):
  return [{k: v for k, v in r.items() if k not in ("wall", "model")} for r in rows]


def test_vmapped_equals_one_by_one(tmp_path):
  """Agreement to float32 rounding, not bitwise: XLA:CPU uses different dot kernels for batched (vmapped) and
  single matmuls, so sums are ordered differently (measured: <= 5e-7 on losses, <= 2e-7 on stable ranks)."""
  train.run(tiny_config(group="attn", ranks="r8", seeds=2, baseline=False), str(tmp_path / "all"))
  together = metrics.read(str(tmp_path / "all"))
  alone = []
  for s in range(2):
    train.run(tiny_config(group="attn", ranks="r8", seeds=1, seed=s, baseline=False), str(tmp_path / f"s{s}"))
    alone += metrics.read(str(tmp_path / f"s{s}"))
  key = lambda r: (r["step"], r["cohort"], r["seed"])
  a, b = sorted(strip(together), key=key), sorted(strip(alone), key=key)
  assert len(a) == len(b) == 2 * len(cohorts.eval_steps(60, 4))
  for x, y in zip(a, b):
    assert key(x) == key(y)
    for k in ("train_acc", "test_acc"):
      assert abs(x[k] - y[k]) <= 1e-6, (k, x, y)
    for k in ("train_loss", "test_loss"):
      assert abs(x[k] - y[k]) <= 1e-5 * max(1.0, abs(y[k])), (k, x, y)
    for layer, v in x["stable_rank"].items():
      assert abs(v - y["stable_rank"][layer]) <= 1e-5, layer


def test_tiny_config_learns_with_one_compilation(tmp_path, compiles, traces):
  train.run(tiny_config(steps=500.0, eval_points=12, baseline=False, group="ffn", ranks="r16"), str(tmp_path / "a"))
  # traced once each: training reuses the memory estimate's traces
  assert [traces(f) for f in ("init", "chunk", "evaluate")] == [1, 1, 1]
  rows = metrics.read(str(tmp_path / "a"))
  last = [r for r in rows if r["step"] == 500]
  assert len(last) == 2 and min(r["train_acc"] for r in last) >= 0.99
  assert len({r["step"] for r in rows}) == len(cohorts.eval_steps(500, 12)) > 10
  assert compiles("chunk") == 1  # ~12 chunk lengths, one program
  train.run(tiny_config(steps=500.0, eval_points=3, baseline=False, group="ffn", ranks="r16"), str(tmp_path / "b"))
  assert compiles("chunk") == 2


def test_data_are_loaded_once_per_run(tmp_path, monkeypatch):
  """The plan loads the data once; every cohort, the shapes and the evaluation use that copy."""
  from dlgrok.data import algorithmic
  calls = []
  real = algorithmic.make
  monkeypatch.setattr(algorithmic, "make", lambda *a: calls.append(a) or real(*a))
  train.run(tiny_config(group="tok", ranks="r4", steps=5.0, eval_points=2), str(tmp_path))
  assert calls == [("x+y", 11, False)]


def test_metrics_rows_have_the_documented_keys(tmp_path):
  train.run(tiny_config(group="tok,out", ranks="p50,p100"), str(tmp_path))
  rows = metrics.read(str(tmp_path))
  keys = {"step", "model", "cohort", "seed", "group", "rank", "frac", "train_acc", "train_loss", "test_acc",
          "test_loss", "stable_rank", "layer_ranks", "pct", "diverged"}
  assert keys <= set(rows[0])
  assert {r["model"] for r in rows} == set(range(2 + 4))
  dec = [r for r in rows if r["cohort"] == "tok,out" and r["step"] == 0]
  assert sorted((r["rank"], r["layer_ranks"]["tok_emb"], r["layer_ranks"]["out"]) for r in dec) == [
      ("p100", 13, 13), ("p100", 13, 13), ("p50", 7, 7), ("p50", 7, 7)]  # vocab p+2 = 13; 6.5 rounds up
  sr = rows[0]["stable_rank"]
  assert set(sr) == {"tok_emb", "pos_emb", "out", *(f"block_{i}/{m}" for i in (0, 1)
                                                   for m in ("attn/qkv", "attn/proj", "ffn/fc1", "ffn/fc2"))}
  assert all(0 < v <= 1 for v in sr.values())
  assert run_config.read(str(tmp_path))["steps"] == 60


def test_eval_steps_log_spaced():
  s = cohorts.eval_steps(10**6, 200)
  assert s[0] == 0 and s[-1] == 10**6 and 150 < len(s) <= 201
  assert s == sorted(set(s))


def test_cohort_too_large_for_the_device_is_refused_up_front(tmp_path, monkeypatch, compiles):
  """With a (faked) device limit, a cohort XLA expects not to fit stops before anything is written, naming how
  many models fit; one that fits trains with no extra compilation."""
  config = tiny_config(group="attn", ranks="r8", baseline=False)
  r = runner(config)
  state = r.init()
  est = max(memory.xla_bytes(r.fns.chunk, state, r.a, r.data, jnp.int32(0), jnp.int32(1)),
            memory.xla_bytes(r.fns.evaluate, state["params"], r.a, r.data))
  limit = int(0.6 * est)  # one of the two models fits
  monkeypatch.setattr(memory, "device_memory", lambda: (None, limit))
  monkeypatch.setattr(memory, "check", lambda plan, limit=None: None)  # the shape estimate's gate: its own tests
  with pytest.raises(configs.ConfigError, match="models fit per device") as e:
    train.run(config, str(tmp_path / "w"))
  fit = int(re.search(r"about (\d+) models fit per device", str(e.value)).group(1))
  assert fit == int(0.95 * limit / (est / 2)) == 1 and "cohort 'attn': 2 models on 1 device(s)" in str(e.value)
  assert not (tmp_path / "w").exists()
  made = compiles("chunk")  # this test's estimate, and the refused run's
  monkeypatch.setattr(memory, "device_memory", lambda: (None, 100 * est))
  train.check_memory(loop.Running(r.cohort, loop.Placement.of(r.plan.config, 2), r.a, r.fns, state), r.data)
  jax.block_until_ready(r.chunk(state, 0, 5))
  assert compiles("chunk") == made == 2  # the estimate's compilation is the one training uses


def test_diverged_model_rows_are_null_and_valid_json(tmp_path, capsys):
  """Weight decay 1e30 blows one model up; its rows say so with nulls (argmax of NaN would be a finite ~chance
  accuracy), the file stays valid JSON (no NaN literal), and progress means leave it out."""
  train.run(tiny_config(weight_decays="0,1e30", seeds=1, steps=20.0), str(tmp_path))
  text = open(metrics.path(str(tmp_path))).read()
  assert "NaN" not in text and "Infinity" not in text
  last = {r["weight_decay"]: r for r in metrics.read(str(tmp_path)) if r["step"] == 20}
  bad, good = last[1e30], last[0.0]
  assert bad["diverged"] and not good["diverged"]
  assert [bad[k] for k in ("train_acc", "test_acc", "train_loss", "test_loss", "gap")] == [None] * 5
  assert set(bad["stable_rank"]) == set(good["stable_rank"]) and set(bad["stable_rank"].values()) == {None}
  assert all(0 < v <= 1 for v in good["stable_rank"].values())
  line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("step 20/20")][-1]
  assert line.endswith(f"train_acc {good['train_acc']:.3f}  test_acc {good['test_acc']:.3f}  (1 diverged, left out)")


def key_bias_dropped(path, a):
  """A parameter less the key part of an attention's qkv bias: softmax ignores a constant added to every key's
  logit, so that bias's gradient is float32 rounding, which Adam scales up to ~lr whatever the program's order."""
  if jax.tree_util.keystr(path).endswith("['attn']['qkv']['bias']"):
    d = a.shape[-1] // 3
    return np.concatenate([a[..., :d], a[..., 2 * d:]], axis=-1)
  return a


@pytest.mark.parametrize("fields", [
    {"group": "ffn", "ranks": "r4,r16", "weight_decays": "0,0.1"},  # 4 models: one pass of 3, then 1
    {"group": "all", "ranks": "p50", "fracs": (0.3, 0.8), "seeds": 1},  # each model its own split and epochs
    {"remedies": ("grokfast_ema",), "ema_lambs": (1.0, 2.0), "seeds": 1, "baseline": False},
])
def test_models_in_a_loop_equal_vmapped_models(fields):
  """model_batch=N runs a step's models N at a time in a loop (the CPU default is 1): every metric equals the
  vmapped step's to 1e-6 after 25 steps (epoch boundaries included), every parameter to 1e-5."""
  out = {}
  for batch in (0, 1, 3):
    config = tiny_config(**fields, model_batch=batch or 99)
    r = runner(config)
    assert loop.model_batch(r.plan.config, loop.Placement.of(r.plan.config, 1)) == (batch or 99)
    state = r.chunk(r.init(), 0, 25)
    params = jax.tree_util.tree_map_with_path(lambda k, a: key_bias_dropped(k, np.asarray(a)), state["params"])
    out[batch] = params, r.rows(25, state["params"])
  (p0, rows0), n = out[0], len(out[0][1])
  assert n >= 2 and rows0[0]["train_loss"] != rows0[-1]["train_loss"]
  for batch in (1, 3):
    p, rows = out[batch]
    diffs = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a, b: np.max(np.abs(a - b)), p0, p))
    assert max(diffs) <= 1e-5, (batch, max(diffs))
    for a, b in zip(rows0, rows):
      for k in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert abs(a[k] - b[k]) <= 1e-6, (batch, k, a[k], b[k])
