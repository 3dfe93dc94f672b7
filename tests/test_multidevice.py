import json
import os
import subprocess
import sys

from conftest import ROOT
from dlgrok import metrics

SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from conftest import tiny_config
import jax
from dlgrok import loop, train
plan, states = train.run(tiny_config(group="ffn", ranks="r4", seeds=5, baseline=False, devices={devices}), {wd!r})
u = states[0]["params"]["block_0"]["ffn"]["fc1"]["kernel"]["U"]
pad = loop.Placement.of(plan.config, len(plan.cohorts[0].models)).pad
print(json.dumps({{"devices": jax.device_count(), "pad": pad, "shape": list(u.shape),
                  "shards": len(u.sharding.device_set), "local_rows": u.addressable_shards[0].data.shape[0]}}))
"""


def run(tmp_path, name, devices):
  # XLA:CPU aborts a collective whose 8 device threads do not all arrive within 40 s, which a loaded 2-core
  # machine can exceed (seen once with the suite beside two training runs): give them 10 minutes.
  flags = ("--xla_force_host_platform_device_count=8 --xla_cpu_collective_call_terminate_timeout_seconds=600 "
           "--xla_cpu_collective_call_warn_stuck_timeout_seconds=120")
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {flags}")
  code = SCRIPT.format(tests=os.path.join(ROOT, "tests"), devices=devices, wd=str(tmp_path / name))
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr
  return json.loads(out.stdout.strip().splitlines()[-1]), metrics.read(str(tmp_path / name))


def test_models_sharded_over_8_devices_match_one_device(tmp_path):
  info8, rows8 = run(tmp_path, "eight", 0)
  info1, rows1 = run(tmp_path, "one", 1)
  assert info8 == {"devices": 8, "pad": 3, "shape": [8, 32, 4], "shards": 8, "local_rows": 1}
  assert info1 == {"devices": 8, "pad": 0, "shape": [5, 32, 4], "shards": 1, "local_rows": 5}
  assert len(rows8) == len(rows1) == 5 * 5 and {r["model"] for r in rows8} == set(range(5))
  key = lambda r: (r["step"], r["model"])
  for a, b in zip(sorted(rows8, key=key), sorted(rows1, key=key)):
    assert key(a) == key(b)
    for k in ("train_acc", "test_acc"):
      assert abs(a[k] - b[k]) <= 1e-6, (k, a, b)
    for k in ("train_loss", "test_loss"):  # one model per device vs five batched: float32 rounding only
      assert abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(b[k])), (k, a, b)
