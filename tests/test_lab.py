"""The grokking lab: factorisation variants, remedies and per-model training fractions in the training loop."""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CLI_ENV, ROOT, Runner, experiment, tiny_config
from dlgrok import decompose, metrics, train

TINY = "p=11,op=x+y,width=32,heads=2,steps=40,seeds=1,eval_points=3,batch_size=32,progress_seconds=1e9"


def logits(r, params, i=0):
  p = jax.tree_util.tree_map(lambda a: a[i], params)
  ranks = {k: v[i] for k, v in r.ranks.items()}
  return r.model.apply({"params": decompose.recompose(p, ranks)}, r.x[:256])


@pytest.mark.parametrize("form", ["usv", "uv", "diag", "s"])
def test_each_variant_at_full_rank_is_the_baseline_at_step_0(form):
  with jax.default_matmul_precision("highest"):
    c = experiment("mod97", f"all,p100,{form},seeds=1")
    base, dec = Runner(c, 0), Runner(c, 1)
    assert dec.cohort.factorisation == form and dec.cohort.row_factorisation == form
    diff = jnp.max(jnp.abs(logits(base, base.init()["params"]) - logits(dec, dec.init()["params"])))
    assert diff < 1e-5, diff


def test_variant_forms_counts_and_frozen_parts():
  """uv has no middle matrix, diag a vector; s trains S only: U and Vt stay bit-identical, as do masked ranks."""
  c = experiment("mod97", f"ffn,r4,r16,usv,uv,diag,s,{TINY},baseline=false")
  runners = {Runner(c, i).cohort.factorisation: Runner(c, i) for i in range(4)}
  m, n, k = 32, 128, 4  # fc1 of width 32: 32 x 128
  want = {"usv": m * k + k * k + k * n, "uv": m * k + k * n, "diag": m * k + k + k * n, "s": k * k}
  for form, r in runners.items():
    s0 = r.init()
    leaf = s0["params"]["block_0"]["ffn"]["fc1"]["kernel"]
    assert sorted(leaf) == {"usv": ["S", "U", "Vt"], "s": ["S", "U", "Vt"], "uv": ["U", "Vt"],
                            "diag": ["U", "Vt", "s"]}[form]
    model = r.cohort.models[0]  # rank 4
    counts = decompose.count_params(jax.tree_util.tree_map(lambda a: a[0], s0["params"]), model.layer_ranks, form)
    assert counts[0]["block_0/ffn/fc1/kernel"]["trained"] == want[form]
    before = jax.tree_util.tree_map(np.asarray, leaf)
    after = jax.tree_util.tree_map(np.asarray, r.chunk(s0, 0, 20)["params"]["block_0"]["ffn"]["fc1"]["kernel"])
    np.testing.assert_array_equal(after["U"][0, :, k:], before["U"][0, :, k:])  # masked beyond rank 4
    np.testing.assert_array_equal(after["Vt"][0, k:], before["Vt"][0, k:])
    if form == "s":
      np.testing.assert_array_equal(after["U"], before["U"])
      np.testing.assert_array_equal(after["Vt"], before["Vt"])
      assert np.any(after["S"][0, :k, :k] != before["S"][0, :k, :k])
    else:
      assert np.any(after["U"][0, :, :k] != before["U"][0, :, :k])
    if form == "diag":
      np.testing.assert_array_equal(after["s"][0, k:], before["s"][0, k:])
  base = runners["usv"].rows(0, runners["usv"].init()["params"])[0]
  s_row = runners["s"].rows(0, runners["s"].init()["params"])[0]
  assert base["trained_params"] - s_row["trained_params"] == 4 * (32 * 4 + 4 * 128)  # U and Vt of 4 layers frozen
  assert (base["variant"], s_row["variant"]) == ("usv", "s")


def strip(rows):
  keep = ("step", "seed", "frac", "remedy_params", "train_acc", "test_acc", "train_loss", "test_loss")
  return sorted(({k: r[k] for k in keep} for r in rows), key=lambda r: json.dumps(r, sort_keys=True))


def close(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert (x["step"], x["frac"], x["remedy_params"]) == (y["step"], y["frac"], y["remedy_params"])
    for k in ("train_acc", "test_acc"):
      assert abs(x[k] - y[k]) <= 1e-6, (k, x, y)
    for k in ("train_loss", "test_loss"):
      assert abs(x[k] - y[k]) <= 1e-5 * max(1.0, abs(y[k])), (k, x, y)


def test_mixed_fractions_and_remedy_hyperparameters_equal_each_model_alone(tmp_path):
  """One cohort spanning fractions x grokfast-EMA alphas (each model its own split and epoch length) equals every
  model trained alone, to the tolerance of the vmap test."""
  c = experiment("mod97", f"grokfast_ema,f50,f80,baseline=false,{TINY}")
  c.ema_alphas = (0.9, 0.98)
  train.run(c, str(tmp_path / "all"))
  together = metrics.read(str(tmp_path / "all"))
  assert {(r["frac"], r["remedy_params"]["alpha"]) for r in together} == {(0.5, 0.9), (0.5, 0.98), (0.8, 0.9),
                                                                          (0.8, 0.98)}
  alone = []
  for frac in ("f50", "f80"):
    for alpha in (0.9, 0.98):
      c = experiment("mod97", f"grokfast_ema,{frac},baseline=false,{TINY}")
      c.ema_alphas = (alpha,)
      train.run(c, str(tmp_path / f"{frac}_{alpha}"))
      alone += metrics.read(str(tmp_path / f"{frac}_{alpha}"))
  close(strip(together), strip(alone))


def test_a_models_batches_and_metrics_do_not_depend_on_its_cohort():
  """At the real size (p 97, batch 512): seed 0 at 50 % gets the same epoch orders alone and beside an 80 % model,
  and the same metrics after 12 steps (an epoch boundary inside), bit for bit under XLA's fusion emitters (the
  product's compile; `XLA_FLAGS=--xla_cpu_use_fusion_emitters=true` tests it so). The suite's loop emitters at LLVM
  level 0 round a one-model program's test loss 1e-7 away from a two-model one's: there, losses to float32
  rounding. Cohort-dependent batches moved them by up to 3.6e-3."""
  arg = "width=32,heads=2,seeds=1,eval_points=2,batch_size=512,progress_seconds=1e9"
  alone, mixed = (Runner(experiment("mod97", f"none,{f},{arg}"), 0) for f in ("f50", "f50,f80"))
  assert [m.frac for m in mixed.cohort.models] == [0.5, 0.8] and alone.cohort.models[0].frac == 0.5
  n = int(alone.a["n_train"][0])
  assert n == int(mixed.a["n_train"][0]) == 4656  # half of the 9312 pairs of x ÷ y mod 97
  for step in (0, 10, 50):  # epochs 0, 1, 5 (10 batches each)
    a = np.asarray(alone.fns.perm_at(alone.a, jnp.int32(step)))[0, :n]
    m = np.asarray(mixed.fns.perm_at(mixed.a, jnp.int32(step)))[0, :n]
    np.testing.assert_array_equal(a, m)
  rows = [r.rows(12, r.chunk(r.init(), 0, 12)["params"])[0] for r in (alone, mixed)]
  assert rows[0]["frac"] == rows[1]["frac"] == 0.5
  loop_emitters = "--xla_cpu_use_fusion_emitters=false" in os.environ.get("XLA_FLAGS", "")
  for k in ("train_acc", "test_acc", "train_loss", "test_loss"):
    if loop_emitters and k.endswith("loss"):
      np.testing.assert_allclose(rows[0][k], rows[1][k], rtol=1e-6, err_msg=k)
    else:
      assert rows[0][k] == rows[1][k], (k, rows[0][k], rows[1][k])


def test_per_model_fractions_have_their_own_splits():
  r = Runner(experiment("mod97", f"f50,f80,{TINY.replace('seeds=1', 'seeds=2')}"), 0)
  n = len(r.plan.data.y)
  assert [m.frac for m in r.cohort.models] == [0.5, 0.5, 0.8, 0.8]
  assert np.asarray(r.a["n_train"]).tolist() == [n // 2, n // 2, int(0.8 * n), int(0.8 * n)]
  assert np.asarray(r.a["is_train"]).sum(axis=1).tolist() == np.asarray(r.a["n_train"]).tolist()
  perm = np.asarray(r.init()["perm"])
  for i, k in enumerate(np.asarray(r.a["n_train"])):  # a permutation of the model's own training examples
    assert sorted(perm[i, :k].tolist()) == list(range(k))


def test_remedy_state_resumes_bit_identically(tmp_path):
  """grokfast EMA buffers and MA windows live in the optimiser state: a SIGTERM in the chunk that ends on an
  evaluation point, then the same command, gives the uninterrupted run's metrics and parameters."""
  arg = f"grokfast_ema,grokfast_ma,{TINY},ma_windows=3,baseline=false"
  cmd = [sys.executable, "-m", "dlgrok.main", f"--config={os.path.join(ROOT, 'experiments', 'mod97.py')}:{arg}",
         "--config.steps=120", "--config.eval_points=5", "--config.progress_seconds=0.05"]
  env = CLI_ENV
  a, b = str(tmp_path / "a"), str(tmp_path / "b")
  assert subprocess.run(cmd + [f"--workdir={a}"], env=env, capture_output=True, timeout=600).returncode == 0
  first = subprocess.run(cmd + [f"--workdir={b}"], env=dict(env, DLGROK_FAULT="target-chunk:3:SIGTERM"),
                         capture_output=True, text=True, timeout=600)
  assert first.returncode == 143, first.stderr
  assert subprocess.run(cmd + [f"--workdir={b}"], env=env, capture_output=True, timeout=600).returncode == 0
  wall = lambda w: [{k: v for k, v in r.items() if k != "wall"} for r in metrics.read(w)]
  assert wall(a) == wall(b) and {r["remedy"] for r in wall(a)} == {"grokfast_ema", "grokfast_ma"}
  import orbax.checkpoint as ocp
  flat = []
  for w in (a, b):
    with ocp.CheckpointManager(os.path.join(w, "checkpoints")) as mngr:
      flat.append(ocp.tree.to_flat_dict(mngr.restore(mngr.latest_step(), args=ocp.args.StandardRestore())))
  assert flat[0].keys() == flat[1].keys()
  assert any("buf" in "/".join(map(str, k)) or "h" in map(str, k) for k in flat[0])  # remedy state is saved
  for k in flat[0]:
    assert np.array_equal(np.asarray(flat[0][k]), np.asarray(flat[1][k])), k


def test_remedy_cohorts_and_composition():
  c = experiment("mod97", f"all,p100,uv,grokfast_ema,stablemax+orthograd,decay,{TINY}")
  names = [Runner(c, i).cohort.name for i in range(5)]
  assert names == ["baseline", "all[uv]", "baseline+grokfast_ema", "baseline+stablemax+orthograd", "baseline+decay"]
  decay = Runner(c, 4).cohort
  assert [m.weight_decay for m in decay.models] == [1.0] and decay.remedy.label == "decay"
  c.remedy_groups = True  # remedies on the decomposed cohort too
  assert [Runner(c, i).cohort.name for i in (3, 5)] == ["all[uv]+grokfast_ema", "all[uv]+stablemax+orthograd"]
  assert tiny_config(group="ffn", ranks="r4").factorisations == ()  # usv by default


def test_recipe_words_reach_the_step():
  """warm0 trains step 0 at learning rate 0 (params unchanged); adam_l2 at decay 0 is the baseline's Adam (to the
  rounding of a two-model cohort's programs: decay at 0 differs from it as much), at decay 0.1 far from AdamW's."""
  c = experiment("mod97", f"warm0,adam_l2,decay,{TINY}")
  c.decays = (0.0, 0.1)
  r = {x.cohort.remedy.label: x for x in (Runner(c, i) for i in range(4))}
  assert sorted(r) == ["adam_l2", "decay", "none", "warm0"]
  assert [m.weight_decay for m in r["adam_l2"].cohort.models] == [0.0, 0.1]
  flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(tree)])
  init = {k: flat(v.init()["params"]) for k, v in r.items()}
  trained = {k: v.chunk(v.init(), 0, 3)["params"] for k, v in r.items()}
  after = {k: flat(v) for k, v in trained.items()}
  one = r["warm0"].chunk(r["warm0"].init(), 0, 1)["params"]
  np.testing.assert_array_equal(flat(one), init["warm0"])
  assert np.any(after["warm0"] != init["warm0"])
  per_model = lambda k, i: flat(jax.tree_util.tree_map(lambda a: a[i], trained[k]))
  none, moved = per_model("none", 0), np.mean(np.abs(after["none"] - init["none"]))  # ~4e-4 in 3 steps
  assert np.mean(np.abs(per_model("adam_l2", 0) - none)) < 1e-4 * moved
  assert np.mean(np.abs(per_model("adam_l2", 1) - per_model("decay", 1))) > 0.5 * moved


def test_preln_is_grokfasts_block_and_has_no_output_bias():
  import flax.linen as nn
  from dlgrok.models import transformer
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 16))
  blk = transformer.Block(16, 2, pre_ln=True)
  p = blk.init(jax.random.PRNGKey(1), x)["params"]
  ln = lambda q, v: nn.LayerNorm(epsilon=1e-5).apply({"params": q}, v)
  h = ln(p["ln1"], x)
  x2 = h + transformer.Attention(16, 2).apply({"params": p["attn"]}, h)
  want = x2 + transformer.FFN(16, 64).apply({"params": p["ffn"]}, ln(p["ln2"], x2))
  np.testing.assert_allclose(blk.apply({"params": p}, x), want, atol=1e-6)
  c = experiment("mod97", f"preln,{TINY},baseline=false")
  r = Runner(c, 0)
  assert r.cohort.model_words == ("preln",) and sorted(r.init()["params"]["out"]) == ["kernel"]
