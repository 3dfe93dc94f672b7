"""dlgrok's half of the same-weights check: one model of the arm preln+grokfast_ema+adam_l2+warm0 (50 %, seed 0),
trained by dlgrok's own cohort functions one step at a time. Saves its initial weights, every step's batch and its
loss before the step, and the weights at a few steps, for grokfast_side.py.
  python dlgrok_side.py STEPS OUT.npz      (in dlgrok's environment, from the repository root)"""
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlgrok import cohorts, configs, loop

steps, out = int(sys.argv[1]), sys.argv[2]
arm = "preln+grokfast_ema+adam_l2+warm0"
c = configs.load("experiments/remedies.py", "preln,grokfast_ema+adam_l2+warm0,f50,remedy_groups=true,"
                 f"baseline=false,decays=0.005,seeds=1,steps={steps}")
plan = cohorts.resolve(c)
data, running = loop.start(plan)
r = next(x for x in running if x.cohort.name == arm)
model = plan.task.model(plan.config, r.cohort.model_words, plan.data)
a, state, bs = r.arrays, r.state, plan.config.batch_size
n_train = int(a["n_train"][0])
batches = -(-n_train // bs)


def flat(params):
  return {"/".join(k.key for k in path): np.asarray(v[0])
          for path, v in jax.tree_util.tree_flatten_with_path(params)[0]}


@jax.jit
def batch_loss(params, xb, yb, w):
  logits = model.apply({"params": jax.tree.map(lambda v: v[0], params)}, xb)
  return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, yb) * w) / jnp.sum(w)


save = {f"init/{k}": v for k, v in flat(state["params"]).items()}
keep = {1, 2, 10, 100, 300, 500, 700, 900, 1000, 1100, 1200, 1300, 1400, steps}
xs, ys, ws, losses = [], [], [], []
for step in range(steps):
  b = step % batches
  perm = state["perm"] if b else r.fns.perm_at(a, step)  # the chunk draws the epoch's order at its first batch
  pos = b * bs + np.arange(bs)
  idx = np.asarray(a["train_idx"][0])[np.asarray(perm[0])[np.minimum(pos, n_train - 1)]]
  w = (pos < n_train).astype(np.float32)
  xb, yb = np.asarray(data["x"])[idx], np.asarray(data["y"])[idx]
  losses.append(float(batch_loss(state["params"], xb, yb, w)))
  xs.append(xb), ys.append(yb), ws.append(w)
  state = r.fns.chunk(state, a, data, step, 1)
  if step + 1 in keep:
    save.update({f"step{step + 1}/{k}": v for k, v in flat(state["params"]).items()})
    ev = r.fns.evaluate(state["params"], a, data)
    print(f"step {step + 1}: loss {losses[-1]:.6f}; train/test acc {float(ev['train_acc'][0]):.4f}/"
          f"{float(ev['test_acc'][0]):.4f}", flush=True)
np.savez(out, x=np.stack(xs), y=np.stack(ys), m=np.stack(ws), loss=np.array(losses), all_x=np.asarray(data["x"]),
         all_y=np.asarray(data["y"]), is_train=np.asarray(a["is_train"][0]), **save)
