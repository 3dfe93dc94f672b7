"""grokfast's half of the same-weights check: its own Decoder, gradfilter_ema (alpha 0.98, lambda 2),
torch.optim.Adam(weight_decay=0.005) and LambdaLR warm-up, imported from a clone of github.com/ironjr/grokfast
(93b2248), started from dlgrok's initial weights and fed dlgrok's batches (dlgrok_side.py's file). Prints both
programs' batch loss and the largest relative weight difference at dlgrok's saved steps. PERTURB=1e-7 multiplies
each initial weight by (1 + 1e-7 * a normal draw): how far float32 rounding alone carries a run apart.
  python grokfast_side.py GROKFAST_CLONE FILE.npz      (with torch; the clone's main.py needs tqdm, stubbed here)"""
import importlib.machinery
import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F

stub = types.ModuleType("tqdm")
stub.tqdm, stub.__spec__ = (lambda x: x), importlib.machinery.ModuleSpec("tqdm", None)
sys.modules["tqdm"] = stub
sys.path.insert(0, sys.argv[1])
import main as gf  # noqa: E402
from grokfast import gradfilter_ema  # noqa: E402

torch.set_num_threads(1)
d = np.load(sys.argv[2])


def weights(prefix):
  """grokfast's state_dict from dlgrok's flax weights at `prefix` (kernels transposed)."""
  t = lambda k: torch.tensor(d[f"{prefix}/{k}"])
  out = {"token_embeddings.weight": t("tok_emb/embedding"), "position_embeddings.weight": t("pos_emb/embedding"),
         "ln_f.weight": t("ln_f/scale"), "ln_f.bias": t("ln_f/bias"), "head.weight": t("out/kernel").T}
  for i in range(2):
    b, q = f"block_{i}", f"layers.{i}"
    out.update({f"{q}.ln_1.weight": t(f"{b}/ln1/scale"), f"{q}.ln_1.bias": t(f"{b}/ln1/bias"),
                f"{q}.ln_2.weight": t(f"{b}/ln2/scale"), f"{q}.ln_2.bias": t(f"{b}/ln2/bias"),
                f"{q}.attn.in_proj_weight": t(f"{b}/attn/qkv/kernel").T,
                f"{q}.attn.in_proj_bias": t(f"{b}/attn/qkv/bias"),
                f"{q}.attn.out_proj.weight": t(f"{b}/attn/proj/kernel").T,
                f"{q}.attn.out_proj.bias": t(f"{b}/attn/proj/bias"),
                f"{q}.mlp.0.weight": t(f"{b}/ffn/fc1/kernel").T, f"{q}.mlp.0.bias": t(f"{b}/ffn/fc1/bias"),
                f"{q}.mlp.2.weight": t(f"{b}/ffn/fc2/kernel").T, f"{q}.mlp.2.bias": t(f"{b}/ffn/fc2/bias")})
  return out


def no_key_bias(name, v):
  """The key third of the in-projection bias does not change the function (softmax is shift-invariant), so its
  gradient is rounding noise that Adam scales up to full steps; it is left out of the comparison."""
  return torch.cat([v[:128], v[256:]]) if name.endswith("in_proj_bias") else v


model = gf.Decoder(dim=128, num_layers=2, num_heads=4, num_tokens=99, seq_len=5)
init = weights("init")
assert set(init) == set(model.state_dict()), set(init) ^ set(model.state_dict())
eps = float(os.environ.get("PERTURB", "0"))
gen = torch.Generator().manual_seed(0)
model.load_state_dict({k: (v * (1 + eps * torch.randn(v.shape, generator=gen))).contiguous() for k, v in init.items()})
opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.005, betas=(0.9, 0.98))
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda update: 1 if update > 10 else update / 10)  # grokfast's
saved = {int(k.split("/")[0][4:]) for k in d.files if k.startswith("step")}
all_x, all_y, is_train = torch.tensor(d["all_x"]).long(), torch.tensor(d["all_y"]).long(), d["is_train"]
grads, worst = None, 0.0
for i in range(len(d["loss"])):
  keep = d["m"][i] > 0
  x, y = torch.tensor(d["x"][i][keep]).long(), torch.tensor(d["y"][i][keep]).long()
  loss = F.cross_entropy(model(x.T)[-1], y)  # as grokfast's main.py: tokens (sequence, batch), loss at '='
  worst = max(worst, abs(loss.item() - d["loss"][i]) / d["loss"][i])
  model.zero_grad()
  loss.backward()
  grads = gradfilter_ema(model, grads=grads, alpha=0.98, lamb=2.0)
  opt.step()
  sched.step()
  if i + 1 in saved:
    sd, ref = model.state_dict(), weights(f"step{i + 1}")
    dw = max(float((no_key_bias(k, sd[k]) - no_key_bias(k, ref[k])).abs().max())
             / max(float(ref[k].abs().max()), 1e-12) for k in sd)
    with torch.no_grad():
      ok = (model(all_x.T)[-1].argmax(-1) == all_y).numpy()
    print(f"step {i + 1}: batch loss grokfast {loss.item():.6f} dlgrok {d['loss'][i]:.6f} (largest relative "
          f"difference so far {worst:.1e}); largest relative weight difference {dw:.1e}; grokfast train/test acc "
          f"{ok[is_train].mean():.4f}/{ok[~is_train].mean():.4f}", flush=True)
