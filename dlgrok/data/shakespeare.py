"""Karpathy's character-level Tiny Shakespeare (App. G.1): input.txt, 1,115,394 characters of 65 kinds.

The directory is `data_dir`, or when that is empty: $DLGROK_DATA/tinyshakespeare if DLGROK_DATA is set, else the
first of ../shared/data/tinyshakespeare (relative to the current directory) and ~/data/tinyshakespeare that holds it.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np

from dlgrok.data import files
from dlgrok.data.files import DataError

FILE = "input.txt"
URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
HOW_TO_GET = f"download {URL} into one of these directories, or set data_dir=DIR"


def find(data_dir=""):
  """The path of input.txt in the first directory that holds it; DataError naming every directory looked in."""
  looked = []
  for d in files.search_dirs(data_dir, "tinyshakespeare"):
    path = os.path.join(d, FILE)
    if os.path.isfile(path):
      return path
    looked.append(f"{d} ({'missing ' + FILE if os.path.isdir(d) else 'no such directory'})")
  raise DataError(f"Tiny Shakespeare not found: need {FILE}; looked in: {'; '.join(looked)}; {HOW_TO_GET}")


def read(data_dir=""):
  """The whole text."""
  path = find(data_dir)
  try:
    with open(path, encoding="utf-8", newline="") as f:
      return f.read()
  except (OSError, UnicodeDecodeError) as e:
    raise DataError(f"{path}: unreadable ({e})") from None


def vocab(text):
  """The sorted distinct characters of `text`, as one string; a character's id is its index."""
  return "".join(sorted(set(text)))


def encode(text, chars):
  """Character ids (int32) of `text`, each the character's index in `chars`."""
  unknown = set(text) - set(chars)
  if unknown:
    raise ValueError(f"characters not in the vocabulary: {''.join(sorted(unknown))!r}")
  table = np.full(max(map(ord, chars), default=0) + 1, -1, np.int32)
  table[[ord(c) for c in chars]] = np.arange(len(chars), dtype=np.int32)
  return table[np.frombuffer(text.encode("utf-32-le"), np.uint32)]


def n_train_chars(n, frac, block=1):
  """int(frac * n), karpathy's split of n characters; DataError if either side has fewer than block + 1."""
  k = int(frac * n)
  if min(k, n - k) < block + 1:
    raise DataError(f"frac={frac:g} splits {n} characters into {k} for training and {n - k} for testing; each "
                    f"side needs at least block+1 = {block + 1}")
  return k


def blocks(ids, block):
  """Non-overlapping windows (x, y), both int32 (N, block) with N = (len(ids) - 1) // block; y is x shifted by one."""
  ids = np.asarray(ids, np.int32)
  n = max(len(ids) - 1, 0) // block
  return ids[:n * block].reshape(n, block), ids[1:n * block + 1].reshape(n, block)


def load(data_dir="", frac=0.9, block=256):
  """{stream, n_train_chars, x, y, n_train_blocks, vocab}: every character's id, then the train blocks followed by
  the test blocks; arrays read-only."""
  text = read(data_dir)
  chars = vocab(text)
  if len(chars) < 2:
    raise DataError(f"{find(data_dir)}: the text has {len(chars)} distinct character(s) ({chars!r}); a "
                    "next-character model needs at least 2")
  stream = encode(text, chars)
  k = n_train_chars(len(stream), frac, block)
  tx, ty = blocks(stream[:k], block)
  vx, vy = blocks(stream[k:], block)
  out = dict(stream=stream, n_train_chars=k, x=np.concatenate([tx, vx]), y=np.concatenate([ty, vy]),
             n_train_blocks=len(tx), vocab=chars)
  for a in (out["stream"], out["x"], out["y"]):
    a.setflags(write=False)
  return out


def windows(stream, limit, key, batch, block):
  """A random batch of (x, y) windows as in nanoGPT's get_batch, reading only stream[:limit]: starts uniform in
  [0, limit - block), x[b] = stream[s:s + block], y[b] = stream[s + 1:s + block + 1]."""
  if isinstance(limit, int) and limit < block + 1:
    raise ValueError(f"limit={limit}: need at least block+1 = {block + 1} characters")
  starts = jax.random.randint(key, (batch,), 0, limit - block)
  chunk = jnp.asarray(stream)[starts[:, None] + jnp.arange(block + 1)]
  return chunk[:, :-1], chunk[:, 1:]
