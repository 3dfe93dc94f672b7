"""CIFAR-10 (App. G.2) from the python-pickle batches data_batch_1..5 and test_batch, directly in the directory or in
its cifar-10-batches-py/ subfolder.

The directory is `data_dir`, or when that is empty: $DLGROK_DATA/cifar10 if DLGROK_DATA is set, else the first of
../shared/data/cifar10 (relative to the current directory) and ~/data/cifar10 that holds the batches.
"""
import hashlib
import http.client
import os
import pickle
import shutil
import tarfile
import urllib.request

import numpy as np

from dlgrok.data import files
from dlgrok.data.files import DataError

TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
FILES = TRAIN + ("test_batch",)
SUBDIR = "cifar-10-batches-py"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
HOW_TO_GET = (f"get {URL} and unpack it into one of these directories (or set data_dir=DIR), or pass download=True "
              "when online")


def find(data_dir=""):
  """The first directory (a searched one or its cifar-10-batches-py/) holding all six batches; DataError naming what
  is missing where."""
  looked = []
  for d in files.search_dirs(data_dir, "cifar10"):
    if not os.path.isdir(d):
      looked.append(f"{d} (no such directory)")
      continue
    for c in (d, os.path.join(d, SUBDIR)):
      missing = [f for f in FILES if not os.path.isfile(os.path.join(c, f))]
      if not missing:
        return c
      if c == d or os.path.isdir(c):
        looked.append(f"{c} (missing {', '.join(missing)})")
  raise DataError(f"CIFAR-10 batches not found: need {', '.join(FILES)}; looked in: {'; '.join(looked)}; "
                  f"{HOW_TO_GET}")


def md5(path):
  h = hashlib.md5()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def download(directory):
  """Fetches the tarball into `directory` (unless already there), checks its md5 and unpacks it there."""
  os.makedirs(directory, exist_ok=True)
  tar = os.path.join(directory, os.path.basename(URL))
  if not os.path.isfile(tar):
    try:
      with urllib.request.urlopen(URL, timeout=60) as r, open(tar + ".part", "wb") as f:
        shutil.copyfileobj(r, f)
    except (OSError, http.client.HTTPException) as e:
      if os.path.exists(tar + ".part"):
        os.remove(tar + ".part")
      raise DataError(f"could not download {URL} ({e}); get it where you are online and unpack it into "
                      f"{directory}, or set data_dir=DIR") from None
    os.replace(tar + ".part", tar)
  got = md5(tar)
  if got != MD5:
    raise DataError(f"{tar}: md5 {got}, expected {MD5}; delete it and download again")
  with tarfile.open(tar, "r:gz") as t:
    t.extractall(directory, filter="data")


_download = download  # load's argument hides the name


def read_batch(path):
  """One pickled batch -> (images uint8 (N, 32, 32, 3), labels int32 (N,))."""
  try:
    with open(path, "rb") as f:
      d = pickle.load(f, encoding="bytes")
  except Exception as e:  # a corrupt pickle can fail in many ways
    raise DataError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
  if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
    raise DataError(f"{path}: not a CIFAR-10 batch (expected a dict with b'data' and b'labels')")
  x, y = np.asarray(d[b"data"]), np.asarray(d[b"labels"])
  if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
    raise DataError(f"{path}: b'data' is {x.dtype} {x.shape}, expected uint8 (N, 3072)")
  if y.shape != (len(x),) or (y.size and y.dtype.kind not in "iu"):
    raise DataError(f"{path}: b'labels' has shape {y.shape} ({y.dtype}), expected {len(x)} integers")
  if y.size and (y.min() < 0 or y.max() > 9):
    raise DataError(f"{path}: label {int(y.min() if y.min() < 0 else y.max())} is outside 0..9")
  # each row is 1024 red, 1024 green, then 1024 blue values, each plane row-major 32x32
  return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y.astype(np.int32)


def load(data_dir="", download=False):
  """(x uint8 (n_train + n_test, 32, 32, 3), y int32, n_train): the five train batches in order, then the test
  batch; read-only. download=True fetches the batches into the first searched directory when none holds them."""
  try:
    d = find(data_dir)
  except DataError:
    if not download:
      raise
    _download(files.search_dirs(data_dir, "cifar10")[0])
    d = find(data_dir)
  parts = [read_batch(os.path.join(d, f)) for f in FILES]
  x = np.concatenate([p[0] for p in parts])
  y = np.concatenate([p[1] for p in parts])
  x.setflags(write=False)
  y.setflags(write=False)
  return x, y, len(x) - len(parts[-1][0])


def write_batches(directory, x, y, n_train):
  """Writes x (N, 32, 32, 3) uint8 and labels y in the CIFAR-10 format: x[:n_train] in five train batches (sizes as
  equal as possible), the rest in test_batch, and batches.meta."""
  x, y = np.asarray(x), np.asarray(y)
  if x.dtype != np.uint8 or x.shape[1:] != (32, 32, 3) or y.shape != (len(x),) or not 0 <= n_train <= len(x):
    raise ValueError(f"need x uint8 (N, 32, 32, 3), y (N,) and 0 <= n_train <= N; got x {x.dtype} {x.shape}, "
                     f"y {y.shape}, n_train={n_train}")
  os.makedirs(directory, exist_ok=True)
  rows = x.transpose(0, 3, 1, 2).reshape(len(x), 3072)
  chunks = np.array_split(np.arange(n_train), 5) + [np.arange(n_train, len(x))]
  for i, (name, idx) in enumerate(zip(FILES, chunks)):
    label = f"training batch {i + 1} of 5" if i < 5 else "testing batch 1 of 1"
    batch = {b"batch_label": label.encode(), b"labels": [int(v) for v in y[idx]], b"data": rows[idx],
             b"filenames": [f"image_{j:05d}.png".encode() for j in idx]}
    with open(os.path.join(directory, name), "wb") as f:
      pickle.dump(batch, f)
  meta = {b"num_cases_per_batch": max(map(len, chunks)), b"label_names": [s.encode() for s in LABELS],
          b"num_vis": 3072}
  with open(os.path.join(directory, "batches.meta"), "wb") as f:
    pickle.dump(meta, f)
