"""MNIST from the standard IDX files (gzipped or not): train-images-idx3-ubyte[.gz] and the three others.

The directory is `data_dir`, or when that is empty: $DLGROK_DATA/mnist if DLGROK_DATA is set, else the first
of ../shared/data/mnist (relative to the current directory) and ~/data/mnist that holds all four files.
"""
import gzip
import os
import zlib

import numpy as np

from dlgrok.data import files
from dlgrok.data.files import DataError

FILES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
         "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}  # IDX type codes
HOW_TO_GET = ("get the standard MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
              "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; e.g. from "
              "https://ossci-datasets.s3.amazonaws.com/mnist/, torchvision's mirror) into one of these "
              "directories, or set data_dir=DIR")


def parse_idx(raw, name="<bytes>"):
  """An IDX byte string -> numpy array (big-endian on disk, native in memory)."""
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in DTYPES:
    raise DataError(f"{name}: not an IDX file (magic number {raw[:4].hex() or 'missing'}; expected 000008xx)")
  ndim = raw[3]
  head = 4 + 4 * ndim
  if len(raw) < head:
    raise DataError(f"{name}: truncated header ({len(raw)} bytes, {ndim} dimensions need {head})")
  dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
  dtype = np.dtype(DTYPES[raw[2]])
  want = head + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
  if len(raw) != want:
    what = "truncated" if len(raw) < want else "too long"
    raise DataError(f"{name}: {what}: shape {dims} needs {want} bytes, the file has {len(raw)}")
  return np.frombuffer(raw, dtype, offset=head).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path):
  """Reads one IDX file; a '.gz' name is decompressed."""
  try:
    if path.endswith(".gz"):
      with gzip.open(path, "rb") as f:
        raw = f.read()
    else:
      with open(path, "rb") as f:
        raw = f.read()
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f"{path}: unreadable ({e})") from None
  return parse_idx(raw, path)


def search_dirs(data_dir=""):
  return files.search_dirs(data_dir, "mnist")


def file_path(directory, base):
  for name in (base + ".gz", base):
    if os.path.isfile(os.path.join(directory, name)):
      return os.path.join(directory, name)
  return None


def find(data_dir=""):
  """{key: path} of the four files in the first directory that holds them all; DataError naming what is missing."""
  missing = []
  for d in search_dirs(data_dir):
    paths = {k: file_path(d, base) for k, base in FILES.items()}
    if all(paths.values()):
      return paths
    if not os.path.isdir(d):
      missing.append(f"{d} (no such directory)")
    else:
      missing.append(f"{d} (missing " + ", ".join(f"{FILES[k]}[.gz]" for k, p in paths.items() if not p) + ")")
  need = ", ".join(f"{base}[.gz]" for base in FILES.values())
  raise DataError(f"MNIST files not found: need {need}; looked in: {'; '.join(missing)}; {HOW_TO_GET}")


def read_all(data_dir=""):
  """(train images, train labels, test images, test labels) as uint8 arrays, checked for consistency."""
  paths = find(data_dir)
  a = {k: read_idx(p) for k, p in paths.items()}
  for split in ("train", "test"):
    x, y = a[f"{split}_x"], a[f"{split}_y"]
    if x.ndim != 3 or y.ndim != 1:
      raise DataError(f"{paths[split + '_x']}, {paths[split + '_y']}: expected images (N, rows, cols) and "
                      f"labels (N,), got {x.shape} and {y.shape}")
    if len(x) != len(y):
      raise DataError(f"{paths[split + '_x']} has {len(x)} images but {paths[split + '_y']} {len(y)} labels")
    if y.size and y.max() > 9:
      raise DataError(f"{paths[split + '_y']}: label {int(y.max())} is outside 0..9")
  return a["train_x"], a["train_y"], a["test_x"], a["test_y"]


PIXELS = {"unit": (0.0, 1.0), "symmetric": (0.5, 0.5), "standard": (0.1307, 0.3081)}  # (mean, std) after / 255


def load(data_dir="", n_train=60000, pixels="unit"):
  """(x float32 (n_train + n_test, rows*cols), y int32): the first `n_train` training images, then the whole
  test set; pixels / 255 (`unit`, [0, 1]), then (x - mean) / std: `symmetric` [-1, 1] (torchvision's
  Normalize((0.5,), (0.5,))), `standard` MNIST's mean 0.1307 and std 0.3081."""
  if pixels not in PIXELS:
    raise DataError(f"pixels={pixels!r}; allowed: {', '.join(PIXELS)}")
  tx, ty, vx, vy = read_all(data_dir)
  if not 1 <= n_train <= len(tx):
    raise DataError(f"n_train={n_train}: the training files hold {len(tx)} images (allowed 1..{len(tx)})")
  x = np.concatenate([tx[:n_train], vx]).reshape(n_train + len(vx), -1).astype(np.float32) / 255.0
  mean, std = PIXELS[pixels]
  if pixels != "unit":
    x = (x - np.float32(mean)) / np.float32(std)
  y = np.concatenate([ty[:n_train], vy]).astype(np.int32)
  x.setflags(write=False)
  y.setflags(write=False)
  return x, y
