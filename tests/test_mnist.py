import gzip
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import ROOT, Runner as runner, experiment as get_config
from helpers import idx_bytes, write, write_mnist
from dlgrok import cohorts, configs, decompose, tasks
from dlgrok.data import mnist

REAL = os.path.join(ROOT, "..", "shared", "data", "mnist")





@pytest.fixture(scope="module")
def fake(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("mnist"))
  return d, write_mnist(d)


def test_idx_round_trip(tmp_path):
  images = np.arange(60, dtype=np.uint8).reshape(5, 3, 4)
  raw = idx_bytes(images)
  assert raw[:4] == bytes.fromhex("00000803") and raw[4:8] == bytes.fromhex("00000005") and len(raw) == 16 + 60
  assert idx_bytes(np.arange(7))[:4] == bytes.fromhex("00000801")
  for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
    write(str(tmp_path / name), raw)
    back = mnist.read_idx(str(tmp_path / name))
    assert back.dtype == np.uint8 and back.shape == (5, 3, 4)
    np.testing.assert_array_equal(back, images)
  ints = np.array([[1, -2], [70000, 3]])
  back = mnist.parse_idx(idx_bytes(ints, 0x0C))
  assert back.dtype == np.int32 and back.tolist() == [[1, -2], [70000, 3]]


@pytest.mark.parametrize("raw,message", [
    (b"\x00\x01\x08\x03" + bytes(12), r"not an IDX file \(magic number 00010803"),
    (b"\x00\x00\x07\x01" + bytes(4), r"not an IDX file \(magic number 00000701"),
    (b"\x00\x00", r"not an IDX file"),
    (b"\x00\x00\x08\x03" + bytes(6), r"truncated header \(10 bytes, 3 dimensions need 16\)"),
    (idx_bytes(np.zeros((5, 3, 4)))[:-1], r"truncated: shape \(5, 3, 4\) needs 76 bytes, the file has 75"),
    (idx_bytes(np.zeros(4)) + b"\x00", r"too long: shape \(4,\) needs 12 bytes, the file has 13"),
])
def test_idx_errors(raw, message):
  with pytest.raises(mnist.DataError, match=message):
    mnist.parse_idx(raw)


def test_corrupt_files_are_clear_errors(tmp_path):
  gz = gzip.compress(idx_bytes(np.zeros((50, 28, 28))))
  (tmp_path / "cut.gz").write_bytes(gz[:len(gz) // 2])
  with pytest.raises(mnist.DataError, match=r"cut\.gz: unreadable"):
    mnist.read_idx(str(tmp_path / "cut.gz"))
  a = write_mnist(str(tmp_path / "d"), n_train=20, n_test=10, gz=False)
  write(str(tmp_path / "d" / "t10k-labels-idx1-ubyte"), idx_bytes(a["test_y"][:9]))
  with pytest.raises(mnist.DataError, match=r"t10k-images-idx3-ubyte has 10 images but .*t10k-labels-idx1-ubyte 9"):
    mnist.read_all(str(tmp_path / "d"))
  write(str(tmp_path / "d" / "t10k-labels-idx1-ubyte"), idx_bytes(np.full(10, 12)))
  with pytest.raises(configs.ConfigError, match=r"label 12 is outside 0\.\.9"):
    cohorts.resolve(get_config("mnist_grok", f"data_dir={tmp_path / 'd'},n_train=20"))


def test_missing_files_name_files_and_directories(tmp_path, monkeypatch):
  monkeypatch.delenv("DLGROK_DATA", raising=False)
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  repo = tmp_path / "work" / "repo"
  repo.mkdir(parents=True)
  monkeypatch.chdir(repo)
  with pytest.raises(configs.ConfigError, match="no such directory") as e:
    cohorts.resolve(get_config("mnist_grok", "l1"))
  msg = str(e.value)
  assert f"{tmp_path / 'work' / 'shared' / 'data' / 'mnist'} (no such directory)" in msg
  assert f"{tmp_path / 'home' / 'data' / 'mnist'} (no such directory)" in msg
  assert "standard MNIST IDX files" in msg and "data_dir=DIR" in msg
  part = tmp_path / "work" / "shared" / "data" / "mnist"
  write_mnist(str(part))
  os.remove(part / "train-labels-idx1-ubyte.gz")
  os.remove(part / "t10k-images-idx3-ubyte.gz")
  with pytest.raises(configs.ConfigError, match=r"missing train-labels-idx1-ubyte\[\.gz\], t10k-images-idx3-ubyte"):
    cohorts.resolve(get_config("mnist_grok", "l1"))
  write_mnist(str(tmp_path / "home" / "data" / "mnist"), n_train=1000)  # the next place looked in
  c = cohorts.resolve(get_config("mnist_grok", "l1")).config
  assert c.frac == 1000 / 1032
  monkeypatch.setenv("DLGROK_DATA", str(tmp_path / "env"))
  with pytest.raises(configs.ConfigError, match=r"looked in: .*env/mnist \(no such directory\); get the standard"):
    cohorts.resolve(get_config("mnist_grok", "l1"))


def test_cli_missing_data_exits_2_and_writes_nothing(tmp_path):
  cfg = os.path.join(ROOT, "experiments", "mnist_grok.py")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-m", "dlgrok.main", f"--config={cfg}:l23,data_dir={tmp_path / 'no'}",
                        f"--workdir={tmp_path / 'w'}"], cwd=tmp_path, capture_output=True, text=True, env=env,
                       timeout=300)
  assert out.returncode == 2
  lines = [l for l in out.stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and "train-images-idx3-ubyte[.gz]" in lines[0] and str(tmp_path / "no") in lines[0]
  assert not (tmp_path / "w").exists()


def test_config_words_ranks_steps_and_errors(fake):
  d, _ = fake
  task = tasks.get("mnist_grok")
  assert task.words() == ("none", "l1", "l2", "l3", "l23", "all")
  for arg, path, ranks in [("l1", "l1/kernel", [25, 50, 100, 150, 200]), ("l3", "l3/kernel", [1, 3, 5, 8, 10]),
                           ("l23", "l2/kernel", [200])]:
    c = get_config("mnist_grok", f"{arg},data_dir={d},n_train=64")
    plan = cohorts.resolve(c)
    r = plan.config
    assert (r.steps, r.seeds, r.batch_size, r.weight_decay, r.init_scale, r.frac) == (1e5, 3, 200, 0.01, 8.0, 64 / 96)
    planned = plan.cohorts
    assert sorted({m.layer_ranks[path] for m in planned[1].models}) == ranks
  plan = cohorts.resolve(get_config("mnist_wd", f"l1,data_dir={d},n_train=64"))
  assert plan.config.steps == 25 * 1  # 25 epochs of ceil(64 / 256) = 1 batch; 25 * 235 = 5875 for 60000 images
  planned = plan.cohorts
  assert [(c.name, len(c.models)) for c in planned] == [("baseline", 60), ("l1", 600)]
  assert sorted({m.layer_ranks["l1/kernel"] for m in planned[1].models}) == [
      26, 51, 77, 102, 128, 154, 179, 205, 230, 256]
  assert sorted({m.weight_decay for m in planned[0].models}) == [0, 1e-4, 1e-3, 1e-2, 0.1, 1.0]
  r = cohorts.resolve(get_config("mnist_wd", f"l1,wd0,wd1e-2,data_dir={d},n_train=64,batch_size=16")).config
  assert (r.weight_decays, r.steps) == ((0.0, 0.01), 25 * 4)
  for arg, message in [("l4", r"unknown token 'l4'; allowed: group words none, l1, l2, l3, l23, all"),
                       ("l1,p150,n_train=64", r"rank percent 'p150' is outside \(0, 100\]"),
                       ("l3,r11,n_train=64", r"rank 11 for 'l3/kernel' of shape \(200, 10\) is outside .* 1\.\.10"),
                       ("l1,f80,n_train=64", r"frac=0.8 does not apply to mnist_grok: the split is fixed"),
                       ("n_train=65", r"n_train=65: the training files hold 64 images"),
                       ("l1,wd-1,n_train=64", r"weight decay -1: must be >= 0")]:
    with pytest.raises(configs.ConfigError, match=message):
      cohorts.resolve(get_config("mnist_grok", f"{arg},data_dir={d}"))


def tiny(d, name="mnist_grok", arg="", **fields):
  c = get_config(name, arg)
  c.update(dict(data_dir=d, n_train=48, width=16, seeds=1, batch_size=16, steps=12.0, eval_points=3,
                progress_seconds=1e9), **fields)
  return c


def test_mse_loss_x8_init_and_evaluation_by_hand(fake):
  d, a = fake
  assert float(tasks.common.mse_one_hot(jnp.zeros((1, 10)), jnp.array([3]))[0]) == pytest.approx(0.1)
  assert float(tasks.common.mse_one_hot(jnp.arange(10.0)[None] / 10, jnp.array([9]))[0]) == pytest.approx(0.205)
  r = runner(tiny(d, eval_chunk=7))  # width 16
  w8 = r.init()["params"]
  for layer, fan_in in (("l1", 784), ("l2", 16), ("l3", 16)):  # PyTorch's U(+-1/sqrt(fan_in)), times 8
    for leaf, near in (("kernel", 0.99), ("bias", 0.8)):
      top = float(jnp.abs(w8[layer][leaf]).max())
      assert near * 8 / fan_in**0.5 < top <= 8 / fan_in**0.5, (layer, leaf, top)
  # E||w||^2 = sum over layers of (fan_in*fan_out + fan_out) / (3 fan_in) = 5.340 + 5.667 + 3.542 = 14.549
  norm = float(optax.tree.norm(w8))
  assert norm == pytest.approx(8 * 14.549**0.5, rel=0.05)
  # the evaluation, in chunks of 7 examples, equals the MLP and MSE written out in numpy
  rows = r.rows(0, w8)
  p = jax.tree_util.tree_map(lambda v: np.asarray(v[0], np.float64), w8)
  x = np.concatenate([a["train_x"][:48], a["test_x"]]).reshape(80, 784) / 255.0
  y = np.concatenate([a["train_y"][:48], a["test_y"]])
  h = np.maximum(x @ p["l1"]["kernel"] + p["l1"]["bias"], 0)
  h = np.maximum(h @ p["l2"]["kernel"] + p["l2"]["bias"], 0)
  out = h @ p["l3"]["kernel"] + p["l3"]["bias"]
  loss = ((out - np.eye(10)[y]) ** 2).mean(-1)
  ok = out.argmax(-1) == y
  row = rows[0]
  assert row["train_loss"] == pytest.approx(loss[:48].mean(), rel=1e-5)
  assert row["test_loss"] == pytest.approx(loss[48:].mean(), rel=1e-5)
  assert (row["train_acc"], row["test_acc"]) == (pytest.approx(ok[:48].mean()), pytest.approx(ok[48:].mean()))
  assert row["train_loss"] > 10  # x8 makes the initial outputs large
  whole = runner(tiny(d, eval_chunk=0)).rows(0, w8)[0]
  assert abs(whole["test_loss"] - row["test_loss"]) <= 1e-6 * row["test_loss"]


def test_parameter_counts_and_compression_ratios(fake):
  d, _ = fake
  plan = cohorts.resolve(tiny(d, width=200))
  grok = cohorts.factorised_shapes(plan.task, plan.config, plan.data, (), {})
  assert decompose.count_params(grok)[1]["dense"] == 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10 == 199210
  # App. E: all layers at 40 % "results in a training and inference model 67.1% and 59.37% of the size"
  r = runner(get_config("mnist_wd", f"all,p40,data_dir={d},n_train=48,seeds=1,weight_decays=0"))
  m = r.cohort.models[0]
  assert {k: v for k, v in m.layer_ranks.items()} == {"l1/kernel": 102, "l2/kernel": 102, "l3/kernel": 4}
  counts = r.rows(0, r.init()["params"])[0]
  # trained: 784*102 + 102^2 + 102*256 | 256*102 + 102^2 + 102*256 | 256*4 + 4^2 + 4*10 | biases 256+256+10
  assert counts["trained_params"] == 116484 + 62628 + 1080 + 522 == 180714
  # inference: 102*(784+256) | 102*(256+256) | 4*(256+10)
  assert counts["inference_params"] == 106080 + 52224 + 1064 + 522 == 159890
  assert counts["dense_params"] == 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10 == 269322
  assert round(counts["trained_params"] / counts["dense_params"], 3) == 0.671
  assert round(counts["inference_params"] / counts["dense_params"], 4) == 0.5937


def test_optimisers_match_pytorch_by_hand():
  c = get_config("mnist_wd")
  c.lr = 0.01
  assert c.optimizer == "sgd"
  opt, p = tasks.common.optimizer(c, 0.1, c.lr), jnp.array([1.0])
  s = opt.init(p)
  for want in (0.994, 0.982606):  # buf = g + wd*p (+ 0.9 buf); p -= lr * buf, with g = 0.5
    u, s = opt.update(jnp.array([0.5]), s, p)
    p = optax.apply_updates(p, u)
    assert float(p[0]) == pytest.approx(want, abs=1e-6)
  c = get_config("mnist_grok")
  assert c.optimizer == "adamw"
  opt, p = tasks.common.optimizer(c, 0.01, c.lr), jnp.array([1.0])
  u, _ = opt.update(jnp.array([0.5]), opt.init(p), p)
  assert float(optax.apply_updates(p, u)[0]) == pytest.approx(1 - 1e-3 * 0.01 - 1e-3, abs=1e-7)


def test_weight_decay_grid_in_one_cohort_equals_one_by_one(fake):
  """To float32 rounding (vmapped and single dot products sum in another order; measured <= 1.1e-7 relative)."""
  d, _ = fake
  grid = tiny(d, "mnist_wd", "l2,p50,p100,wd0,wd0.5", lr=0.05, baseline=False)
  r = runner(grid)
  assert [(m.rank.label, m.weight_decay) for m in r.cohort.models] == [("p50", 0), ("p50", 0.5), ("p100", 0), ("p100", 0.5)]
  rows = r.rows(12, r.chunk(r.init(), 0, 12)["params"])
  for row, (rank, wd) in zip(rows, [("p50", 0), ("p50", 0.5), ("p100", 0), ("p100", 0.5)]):
    one = runner(tiny(d, "mnist_wd", f"l2,{rank},wd{wd}", lr=0.05, baseline=False))
    alone = one.rows(12, one.chunk(one.init(), 0, 12)["params"])[0]
    assert (row["rank"], row["weight_decay"]) == (alone["rank"], alone["weight_decay"]) == (rank, wd)
    for k in ("train_loss", "test_loss"):
      assert abs(row[k] - alone[k]) <= 1e-5 * abs(alone[k]), (k, row, alone)
    assert abs(row["train_acc"] - alone["train_acc"]) <= 1e-6
  assert rows[1]["train_loss"] - rows[0]["train_loss"] > 1e-3  # the weight decay did act, per model
  base = cohorts.resolve(tiny(d, "mnist_wd", "wd0,wd0.5", seeds=2)).cohorts
  assert [(m.seed, m.weight_decay) for m in base[0].models] == [(0, 0), (1, 0), (0, 0.5), (1, 0.5)]


def test_pixel_scaling(fake):
  """unit: [0, 1]; symmetric: [-1, 1]; standard: (x - 0.1307) / 0.3081. App. E (mnist_wd) defaults to symmetric,
  with which its baselines land on the paper's; App. F (mnist_grok) keeps Omnigrok's [0, 1]."""
  d, arrays = fake
  raw = np.concatenate([arrays["train_x"], arrays["test_x"]]).reshape(96, -1).astype(np.float32)
  ranges = {}
  for pixels in ("unit", "symmetric", "standard"):
    x, _ = mnist.load(d, 64, pixels)
    mean, std = mnist.PIXELS[pixels]
    np.testing.assert_allclose(x, (raw / 255 - mean) / std, rtol=1e-6, atol=1e-6)
    ranges[pixels] = (float(x.min()), float(x.max()))
  assert ranges["unit"] == (0.0, 1.0) and ranges["symmetric"] == (-1.0, 1.0)
  assert ranges["standard"] == pytest.approx((-0.1307 / 0.3081, 0.8693 / 0.3081))
  assert get_config("mnist_wd", "").pixels == "symmetric" and get_config("mnist_grok", "").pixels == "unit"
  c = cohorts.resolve(get_config("mnist_wd", f"l1,data_dir={d},n_train=64,pixels=standard")).config
  assert c.pixels == "standard"
  with pytest.raises(configs.ConfigError, match="pixels='zero'; allowed: unit, symmetric, standard"):
    cohorts.resolve(get_config("mnist_wd", f"l1,data_dir={d},n_train=64,pixels=zero"))


@pytest.mark.skipif(not os.path.isdir(REAL), reason=f"no MNIST files at {os.path.normpath(REAL)}")
def test_real_mnist_smoke():
  x, y = mnist.load(REAL, 1000)
  assert x.shape == (11000, 784) and x.dtype == np.float32 and float(x.max()) == 1.0
  assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
  assert np.bincount(y[1000:]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
  c = get_config("mnist_grok", f"l23,p100,seeds=1,baseline=false,data_dir={REAL},init_scale=1,steps=100")
  r = runner(c)
  row = r.rows(100, r.chunk(r.init(), 0, 100)["params"])[0]
  assert row["train_acc"] > 0.8 and row["test_acc"] > 0.7, row
