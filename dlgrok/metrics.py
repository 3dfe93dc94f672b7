"""metrics.jsonl: one JSON object per (evaluation step, model); written by train, read by plot and inspect."""
import gzip
import json
import math
import os

WALL_FIELDS = ("wall",)  # fields that differ between otherwise identical runs


def path(workdir):
  return os.path.join(workdir, "metrics.jsonl")


class Writer:
  """Appends rows to <workdir>/metrics.jsonl and flushes after every write."""

  def __init__(self, workdir):
    self._f = open(path(workdir), "a")

  def write(self, rows):
    for row in rows:
      self._f.write(json.dumps(finite(row), sort_keys=True, allow_nan=False) + "\n")
    self._f.flush()
    os.fsync(self._f.fileno())

  def close(self):
    self._f.close()


def finite(value):
  """`value` with every NaN or infinity (nested in dicts and lists) as None: valid JSON, never a bare NaN."""
  if isinstance(value, float):
    return value if math.isfinite(value) else None
  if isinstance(value, dict):
    return {k: finite(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [finite(v) for v in value]
  return value


class NullWriter:
  """What processes other than 0 write: nothing."""

  def write(self, rows):
    pass

  def close(self):
    pass


def read(workdir):
  """All rows of <workdir>/metrics.jsonl (a workdir or the file itself), or of its gzipped copy
  metrics.jsonl.gz (as results/ keeps them)."""
  p = workdir if workdir.endswith((".jsonl", ".jsonl.gz")) else path(workdir)
  if not os.path.exists(p) and os.path.exists(p + ".gz"):
    p += ".gz"
  with (gzip.open if p.endswith(".gz") else open)(p, "rt") as f:
    return [json.loads(line) for line in f if line.strip()]


def truncate_after(workdir, step):
  """Drops rows with step > `step` (used on resume so no row is written twice)."""
  p = path(workdir)
  if not os.path.exists(p):
    return
  with open(p) as f:
    lines = [l for l in f if l.strip() and json.loads(l)["step"] <= step]
  with open(p, "w") as f:
    f.writelines(lines)


def load_config(workdir):
  with open(os.path.join(workdir, "config.json")) as f:
    return json.load(f)
