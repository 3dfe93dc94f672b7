"""Compile time, executable size and peak host memory of a cohort's train chunk and evaluation.

  python benchmarks/compile_cost.py                       # mnist_wd.py:all,p100,p40 and a full-size CIFAR-10
  python benchmarks/compile_cost.py --spec mnist_wd.py:all,p100,p40,seeds=1

Each spec runs in a fresh process: plan and data, then lower + compile the train chunk and the evaluation
(seconds), the executables' serialized size (what a constant data set inflates), and the process's peak resident
memory (ru_maxrss). CIFAR-10 has no files here: 60 000 random images in its format (50 000 train), written to a
temporary folder.
"""
import argparse
import inspect
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.path.join(ROOT, "..", "shared", "data", "mnist")
SPECS = (f"mnist_wd.py:all,p100,p40,seeds=1,data_dir={MNIST}",
         "cifar10.py:attn,p100,seeds=1,baseline=false,data_dir={cifar}")


def fake_cifar(d):
  import numpy as np
  from dlgrok.data import cifar10
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (60000, 32, 32, 3), dtype=np.uint8)
  cifar10.write_batches(d, x, rng.integers(0, 10, 60000).astype(np.int32), 50000)


def measure(spec):
  import jax
  import jax.numpy as jnp
  from jax.experimental import serialize_executable
  from dlgrok import cohorts, configs, loop
  name, arg = spec.split(":", 1)
  plan = cohorts.resolve(configs.load(os.path.join(ROOT, "experiments", name), arg))
  with jax.default_matmul_precision(plan.config.matmul_precision):
    _, data, arrays, fns = loop.build(plan)
    f, a = fns[-1], arrays[-1]
    # dlgrok before the data became an argument: make_cohort(plan, cohort, placement, data), the data closed over
    takes_data = len(inspect.signature(loop.make_cohort).parameters) == 3
    extra = (data,) if takes_data else ()
    state = f.init(a, *extra)
    out = {"spec": spec, "models": len(plan.cohorts[-1].models), "data_is_argument": takes_data}
    for what, fn, args in (("train", f.chunk, (state, a, *extra, jnp.int32(0), jnp.int32(1))),
                           ("eval", f.evaluate, (state["params"], a, *extra))):
      t = time.perf_counter()
      compiled = fn.lower(*args).compile()
      out[f"{what}_compile_s"] = round(time.perf_counter() - t, 2)
      out[f"{what}_executable_mb"] = round(len(serialize_executable.serialize(compiled)[0]) / 2**20, 1)
  out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--spec", action="append", help="experiments/<file>:<argument> (repeatable)")
  p.add_argument("--row", help=argparse.SUPPRESS)
  a = p.parse_args(argv)
  if a.row:
    print("RESULT " + json.dumps(measure(a.row)), flush=True)
    return
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    if any("{cifar}" in s for s in (a.spec or SPECS)):
      fake_cifar(tmp)
    for spec in a.spec or SPECS:
      spec = spec.format(cifar=tmp)
      r = subprocess.run([sys.executable, os.path.abspath(__file__), "--row", spec], capture_output=True, text=True)
      lines = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
      rows.append(json.loads(lines[-1][7:]) if lines else {"spec": spec, "error": r.stderr.strip()[-300:]})
      print(json.dumps(rows[-1]), flush=True)
  return rows


if __name__ == "__main__":
  main()
