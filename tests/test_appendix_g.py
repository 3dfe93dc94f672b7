"""App. G models through the product's own plan and training loop, on tiny data files written here."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import experiment
from dlgrok import cohorts, decompose, metrics, train
from dlgrok.data import cifar10
from dlgrok.models import gpt, vit

# the 65 characters of Tiny Shakespeare, in the order `vocab` sorts them
CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("tinyshakespeare")
  rng = np.random.default_rng(0)
  (d / "input.txt").write_text(CHARS + "".join(rng.choice(list(CHARS), 4000)))
  return str(d)


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("cifar10")
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
  cifar10.write_batches(str(d), x, (np.arange(60) * 7 % 10).astype(np.int32), 40)
  return str(d)


def trained_params(config):
  """Whole-model trained parameters of every model `plan` makes, from eval_shape (nothing is trained)."""
  plan = cohorts.resolve(config)
  out = []
  for cohort in plan.cohorts:
    model = plan.task.model(plan.config, (), plan.data)
    x = plan.task.prepare(jnp.asarray(plan.data.x[:1]))
    tree = jax.eval_shape(lambda k: decompose.factorise(model.init(k, x)["params"], cohort.max_ranks),
                          jax.random.PRNGKey(0))
    out += [decompose.count_params(tree, m.layer_ranks)[1] for m in cohort.models]
  return out


def test_paper_parameter_counts_of_both_models():
  n = lambda t: sum(a.size for a in jax.tree_util.tree_leaves(t))
  g = jax.eval_shape(lambda k: gpt.GPT().init(k, jnp.zeros((1, 256), jnp.int32)), jax.random.PRNGKey(0))
  v = jax.eval_shape(lambda k: vit.ViT().init(k, jnp.zeros((1, 32, 32, 3))), jax.random.PRNGKey(0))
  assert n(g) == 10_788_929 and n(v) == 827_530


def test_shakespeare_compression_matches_the_paper(text_dir):
  """App. G.1: all layers at 12.5 % -> 1,815,249 parameters (0.1683); at 50 % -> 0.7215 (7,784,837 = 0.72157)."""
  rows = trained_params(experiment("shakespeare", f"all,p12.5,p50,seeds=1,data_dir={text_dir}"))
  assert [r["dense"] for r in rows] == [10_788_929] * 3
  assert [r["trained"] for r in rows] == [10_788_929, 1_815_249, 7_784_837]
  assert [r["trained"] / r["dense"] for r in rows] == [1, pytest.approx(0.1683, abs=5e-5),
                                                       pytest.approx(0.7215, abs=1e-4)]


def test_cifar_compression_near_the_paper(cifar_dir):
  """App. G.2 "all but fc1 and output" at 12.5 %: the paper's 363,658 (0.4394) needs the 64 x 128 position table
  at rank 16 (12.5 % of its width), which r16 gives; dlgrok's p12.5 (12.5 % of min(m, n) = 8) gives 361,930.
  A cohort orders absolute ranks before percents: r16, then p12.5."""
  c = experiment("cifar10", f"all_but_fc1_out,p12.5,r16,seeds=1,data_dir={cifar_dir},n_train=40")
  assert [r["trained"] for r in trained_params(c)] == [827_530, 363_658, 361_930]
  specs = cohorts.resolve(c).cohorts[1].models
  assert [m.rank.label for m in specs] == ["r16", "p12.5"]
  assert len(specs[0].layer_ranks) == 2 + 6 * 5 and set(specs[0].layer_ranks.values()) == {16}
  assert specs[1].layer_ranks["pos_emb/embedding"] == 8


def tiny(name, arg, **fields):
  c = experiment(name, arg)
  c.update(fields)
  return c


def strip(rows):
  return sorted(({k: v for k, v in r.items() if k not in ("wall", "model")} for r in rows),
                key=lambda r: (r["step"], r["cohort"], r["rank"]))


def check_vmapped_equals_alone(config, tmp_path, group, ranks):
  train.run(config(",".join([group, *ranks, "baseline=false"])), str(tmp_path / "all"))
  together = metrics.read(str(tmp_path / "all"))
  alone = []
  for r in ranks:
    train.run(config(f"{group},{r},baseline=false"), str(tmp_path / r))
    alone += metrics.read(str(tmp_path / r))
  a, b = strip(together), strip(alone)
  assert len(a) == len(b) == len(ranks) * 3 and a[-1]["step"] == 6
  for x, y in zip(a, b):
    assert (x["step"], x["rank"]) == (y["step"], y["rank"])
    for k in ("train_acc", "test_acc", "train_loss", "test_loss"):
      assert abs(x[k] - y[k]) <= 1e-5 * max(1.0, abs(y[k])), (k, x, y)
  assert a[-1]["train_loss"] != a[0]["train_loss"]  # it trained


def test_tiny_gpt_vmapped_over_ranks_equals_alone(text_dir, tmp_path):
  config = lambda arg: tiny(
      "shakespeare", arg, data_dir=text_dir, width=16, heads=2, layers=1, block=16, batch_size=4, seeds=1,
      steps=6.0, eval_points=2, frac=0.5, progress_seconds=1e9)
  check_vmapped_equals_alone(config, tmp_path, "all", ["r2", "r8"])


def test_tiny_vit_vmapped_over_ranks_equals_alone(cifar_dir, tmp_path):
  config = lambda arg: tiny(
      "cifar10", arg, data_dir=cifar_dir, n_train=40, width=16, heads=2, layers=1, batch_size=8, seeds=1, steps=6.0,
      eval_points=2, epochs=2, warmup_epochs=1, progress_seconds=1e9)
  check_vmapped_equals_alone(config, tmp_path, "attn", ["r2", "r8"])


def test_files_are_read_once_per_run(text_dir, cifar_dir, tmp_path, monkeypatch):
  """No cache hides repeated loads: the plan reads each file once, and the model takes the vocabulary from it."""
  from dlgrok.data import shakespeare
  reads = []
  for module, name in ((shakespeare, "read"), (cifar10, "read_batch")):
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, real=real: reads.append(a) or real(*a))
  train.run(tiny("shakespeare", "all,r2,seeds=1", data_dir=text_dir, width=16, heads=2, layers=1, block=16,
                 batch_size=4, steps=2.0, eval_points=2, frac=0.5, progress_seconds=1e9), str(tmp_path / "text"))
  assert reads == [(text_dir,)]
  train.run(tiny("cifar10", "attn,r2,seeds=1", data_dir=cifar_dir, n_train=40, width=16, heads=2, layers=1,
                 batch_size=8, steps=2.0, eval_points=2, epochs=2, warmup_epochs=1, progress_seconds=1e9),
            str(tmp_path / "cifar"))
  assert sorted(a[0] for a in reads[1:]) == sorted(f"{cifar_dir}/{f}" for f in cifar10.FILES)
