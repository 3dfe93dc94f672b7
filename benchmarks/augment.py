"""Images/s of the CIFAR-10 training augmentation (dlgrok.data.augment.train_batch) on the current backend.

  python benchmarks/augment.py                 # batches of 128; plain, then vmapped over M = 1, 8, 32 models
  python benchmarks/augment.py --quick         # the same rows, timed for a moment each (CPU smoke run)
  python benchmarks/augment.py --models 1,64 --batch 256
  python benchmarks/augment.py --train 1,8      # + the real ViT train loop with and without augmentation

Each row jits once, runs one call to compile, then times calls (each with fresh keys) for at least --seconds,
blocking on the last result; a vmapped call augments M x batch images, each model with its own keys and images.
--train times dlgrok's CIFAR-10 train chunk (paper ViT, batch 128, M baseline models, random images) as it is
and with the augmentation replaced by normalisation only: the difference is what augmenting costs in training.
"""
import argparse
import dataclasses
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlgrok import cohorts, configs, loop, tasks
from dlgrok.data import augment, cifar10


def rate(models, batch, seconds):
  """(images/s, calls timed) of jitted train_batch; models=0 is train_batch itself, else vmapped over models."""
  shape = (batch, 32, 32, 3) if models == 0 else (models, batch, 32, 32, 3)
  imgs = jax.device_put(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
  aug = augment.train_batch if models == 0 else jax.vmap(augment.train_batch)
  key = lambda i: jax.random.fold_in(jax.random.key(0), i)  # fresh keys each call, made on the device
  fn = jax.jit(lambda i, x: aug(key(i) if models == 0 else jax.random.split(key(i), models), x))
  fn(0, imgs).block_until_ready()  # compile
  calls, start = 0, time.perf_counter()
  while calls == 0 or time.perf_counter() - start < seconds:
    calls += 1
    out = fn(calls, imgs)
    if calls % 4 == 0:
      out.block_until_ready()
  out.block_until_ready()
  return max(models, 1) * batch * calls / (time.perf_counter() - start), calls


class Normalised(type(tasks.get("cifar10"))):
  """CIFAR-10 with the training augmentation replaced by the evaluation's normalisation."""

  def batch(self, d, idx, valid, key, plan):
    return self.prepare(d["x"][idx]), d["y"][idx], valid


def train_rate(models, steps, augmented, data_dir):
  """Model-steps/s of the jitted CIFAR-10 train chunk (`steps` steps, after one compiling call)."""
  config = configs.load(os.path.join(configs.shipped("experiments"), "cifar10.py"),
                        f"none,seeds={models},n_train=1024,steps={steps + 1}")
  config.data_dir = data_dir
  plan = cohorts.resolve(config)
  if not augmented:
    plan = dataclasses.replace(plan, task=Normalised())
  data, (r,) = loop.start(plan)
  state = r.fns.chunk(r.state, r.arrays, data, jnp.int32(0), jnp.int32(1))
  jax.block_until_ready(state)
  start = time.perf_counter()
  jax.block_until_ready(r.fns.chunk(state, r.arrays, data, jnp.int32(1), jnp.int32(steps)))
  return models * steps / (time.perf_counter() - start)


def train_rows(models, steps):
  print("\n| ViT train, M models | model-steps/s augmented | not augmented | augmentation's share of a step |")
  print("|---|---|---|---|")
  with tempfile.TemporaryDirectory() as d:
    rng = np.random.default_rng(0)
    cifar10.write_batches(d, rng.integers(0, 256, (1040, 32, 32, 3), dtype=np.uint8),
                          (np.arange(1040) % 10).astype(np.int32), 1024)
    for m in models:
      a, b = train_rate(m, steps, True, d), train_rate(m, steps, False, d)
      print(f"| {m} | {a:.2f} | {b:.2f} | {1 - a / b:.1%} |", flush=True)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--models", default="1,8,32", help="comma-separated M for the vmapped rows")
  ap.add_argument("--batch", type=int, default=128)
  ap.add_argument("--seconds", type=float, default=5.0, help="least timed seconds per row")
  ap.add_argument("--quick", action="store_true", help="time each row for 0.2 s (at least one call)")
  ap.add_argument("--train", default="", help="comma-separated M: also time the ViT train loop with these")
  ap.add_argument("--train_steps", type=int, default=20, help="timed steps of each train row")
  args = ap.parse_args(argv)
  seconds = 0.2 if args.quick else args.seconds
  d = jax.devices()[0]
  print(f"# {jax.device_count()}x {d.device_kind} ({d.platform}), {os.cpu_count()} host CPUs, jax {jax.__version__}")
  print("| row | images/call | calls | images/s |\n|---|---|---|---|")
  rows = []
  for m in [0] + [int(s) for s in args.models.split(",")]:
    r, calls = rate(m, args.batch, seconds)
    name = "train_batch" if m == 0 else f"vmap M={m}"
    print(f"| {name} | {max(m, 1) * args.batch} | {calls} | {r:,.0f} |", flush=True)
    rows.append({"models": m, "rate": r, "calls": calls})
  if args.train:
    train_rows([int(s) for s in args.train.split(",")], args.train_steps)
  return rows


if __name__ == "__main__":
  main()
