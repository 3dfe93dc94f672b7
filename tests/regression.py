"""Behaviour check for refactors: a fixed set of small runs of every task family through the CLI, recorded once
and compared after a change. Metrics rows (less wall-clock fields) and final parameters must be identical.

  python tests/regression.py record runs/regression.json    # before the change
  python tests/regression.py check runs/regression.json     # after it: prints any difference, exits 1 on one

Fields that rows gain later are listed but not counted as a difference (rows are compared on the recorded keys).
Digests are of this machine's XLA build: record and check on the same machine.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.path.join(ROOT, "..", "shared", "data", "mnist")
CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def runs(data):
  """name -> experiments/<file>:<argument> of the fixed set."""
  return {
      "mod97_tok_r12": "mod97.py:tok,r12,seeds=2,steps=200,eval_points=6",
      "mod97_ffn": "mod97.py:ffn,seeds=2,steps=60,eval_points=4",
      "remedies_lab": ("remedies.py:all,p100,usv,uv,grokfast_ema,grokfast_ma+decay,stablemax+orthograd,adam_l2+warm0,"
                       "f50,f80,seeds=1,width=32,heads=2,steps=30,eval_points=3"),
      "mnist_grok_l2": f"mnist_grok.py:l2,seeds=1,steps=100,eval_points=4,data_dir={MNIST}",
      "mnist_wd_l1": f"mnist_wd.py:l1,p10,p50,wd0,wd0.1,seeds=1,n_train=2000,epochs=2,eval_points=3,data_dir={MNIST}",
      "shakespeare_tiny": (f"shakespeare.py:all,r2,r8,seeds=1,width=16,heads=2,layers=1,block=16,batch_size=4,"
                           f"steps=20,eval_points=2,frac=0.5,data_dir={data}/text"),
      "cifar10_tiny": (f"cifar10.py:attn,r2,r8,seeds=1,n_train=40,width=16,heads=2,layers=1,batch_size=8,steps=10,"
                       f"eval_points=2,epochs=2,warmup_epochs=1,data_dir={data}/cifar"),
  }


def write_data(d):
  """The synthetic text and CIFAR batches of the App. G tests (same seeds, same sizes)."""
  from dlgrok.data import cifar10
  os.makedirs(f"{d}/text", exist_ok=True)
  rng = np.random.default_rng(0)
  with open(f"{d}/text/input.txt", "w") as f:
    f.write(CHARS + "".join(rng.choice(list(CHARS), 4000)))
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
  cifar10.write_batches(f"{d}/cifar", x, (np.arange(60) * 7 % 10).astype(np.int32), 40)


def digest(workdir):
  import orbax.checkpoint as ocp
  from dlgrok import metrics
  rows = [{k: v for k, v in r.items() if k not in metrics.WALL_FIELDS} for r in metrics.read(workdir)]
  with ocp.CheckpointManager(os.path.join(workdir, "checkpoints")) as mngr:
    step = mngr.latest_step()
    flat = ocp.tree.to_flat_dict(mngr.restore(step, args=ocp.args.StandardRestore()))
  params = {"/".join(map(str, k)): hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()[:16]
            for k, v in flat.items()}
  return {"rows": rows, "step": int(step), "params": params}


def run_all(only=None):
  out = {}
  with tempfile.TemporaryDirectory() as d:
    write_data(d)
    for name, spec in runs(d).items():
      if only and name not in only:
        continue
      wd = os.path.join(d, name)
      cmd = [sys.executable, "-m", "dlgrok.main", f"--config={ROOT}/experiments/{spec}", f"--workdir={wd}",
             "--config.progress_seconds=1e9"]
      done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
      if done.returncode:
        sys.exit(f"{name} failed: {done.stderr[-2000:]}")
      out[name] = digest(wd)
      print(f"{name}: {len(out[name]['rows'])} rows, {len(out[name]['params'])} arrays", flush=True)
  return out


def compare(old, new):
  """Differences between two records, as lines."""
  lines = []
  for name, a in old.items():
    b = new.get(name)
    if b is None:
      lines.append(f"{name}: not run")
      continue
    extra = sorted({k for r in b["rows"] for k in r} - {k for r in a["rows"] for k in r})
    if extra:
      print(f"{name}: rows gained fields {extra} (not compared)")
    if len(a["rows"]) != len(b["rows"]):
      lines.append(f"{name}: {len(a['rows'])} rows recorded, {len(b['rows'])} now")
    for i, (x, y) in enumerate(zip(a["rows"], b["rows"])):
      y = {k: y.get(k) for k in x}
      if json.dumps(x, sort_keys=True) != json.dumps(y, sort_keys=True):
        diff = {k: (x[k], y[k]) for k in x if x[k] != y[k]}
        lines.append(f"{name}: row {i} (step {x['step']}, model {x['model']}) differs: {diff}")
        break
    if a["step"] != b["step"] or a["params"] != b["params"]:
      keys = [k for k in a["params"] if a["params"][k] != b["params"].get(k)]
      lines.append(f"{name}: final parameters differ (step {a['step']} vs {b['step']}; arrays {keys[:5]})")
  return lines


def main(argv):
  if len(argv) < 3 or argv[1] not in ("record", "check"):
    sys.exit(__doc__)
  only = argv[3:]
  result = run_all(only)
  if argv[1] == "record":
    with open(argv[2], "w") as f:
      json.dump(result, f)
    print(f"recorded {len(result)} runs in {argv[2]}")
    return
  with open(argv[2]) as f:
    old = json.load(f)
  diffs = compare({k: v for k, v in old.items() if not only or k in only}, result)
  print("\n".join(diffs) if diffs else f"identical: {len(result)} runs, every metrics row (less wall) and every "
        "final parameter array")
  sys.exit(1 if diffs else 0)


if __name__ == "__main__":
  main(sys.argv)
