"""Files and rows several test modules write: fake MNIST IDX files, rewritten metrics.jsonl, diverged rows, and
the text of a grid figure's cell."""
import gzip
import json
import os

import numpy as np

from dlgrok.data import mnist


def idx_bytes(a, code=0x08):
  a = np.asarray(a)
  return bytes([0, 0, code, a.ndim]) + np.array(a.shape, ">u4").tobytes() + a.astype(mnist.DTYPES[code]).tobytes()


def write(path, data):
  with (gzip.open if path.endswith(".gz") else open)(path, "wb") as f:
    f.write(data)


def write_mnist(d, n_train=64, n_test=32, gz=True):
  """Random 28x28 images with labels 0..9 in the four standard IDX files."""
  os.makedirs(d, exist_ok=True)
  rng = np.random.default_rng(0)
  arrays = {"train_x": rng.integers(0, 256, (n_train, 28, 28)), "train_y": np.arange(n_train) % 10,
            "test_x": rng.integers(0, 256, (n_test, 28, 28)), "test_y": (np.arange(n_test) * 3) % 10}
  for k, base in mnist.FILES.items():
    write(os.path.join(d, base + (".gz" if gz else "")), idx_bytes(arrays[k]))
  return arrays


def rewrite(d, rows):
  with open(os.path.join(d, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows)


def diverge(rows, step):
  """Rows from `step` on as train writes a diverged model's: null accuracies, losses, gap and stable ranks."""
  for r in rows:
    if r["step"] >= step:
      r.update(diverged=True, train_acc=None, test_acc=None, train_loss=None, test_loss=None, gap=None,
               stable_rank=dict.fromkeys(r["stable_rank"]))
  return rows


def cell_texts(ax, j, i=0):
  return [t.get_text() for t in ax.texts if t.get_position() == (j, i)]
