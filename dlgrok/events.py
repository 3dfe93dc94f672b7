"""TensorBoard event files of a run, written without TensorFlow, local or on a bucket.

<workdir>/tensorboard/<cohort>/model_<i>: per model, accuracy/train, accuracy/test, loss/train, loss/test and
stable_rank/<layer> (nothing at an evaluation where it has diverged); <cohort>/mean: the means over the cohort's
models that have not diverged, and `diverged`, how many have. Each process writes new files, which begin with a
SessionLog START at the step it trains from: TensorBoard's reader then drops the older files' values from that step
on, which a resumed run evaluates again.

The format: TFRecord framing (length, masked CRC-32C, data, masked CRC-32C) around `Event` protocol buffers
(wall_time = 1, step = 2, file_version = 3, summary = 5, session_log = 7; Summary.Value: tag = 1, simple_value = 2;
SessionLog: status = 1, START = 1).
"""
import math
import os
import socket
import struct
import time

from dlgrok import disk, workdir as wd

FOLDER = "tensorboard"


def _table():
  out = []
  for n in range(256):
    for _ in range(8):
      n = (n >> 1) ^ 0x82F63B78 if n & 1 else n >> 1
    out.append(n)
  return out


_CRC = _table()


def crc32c(data):
  crc = 0xFFFFFFFF
  for b in data:
    crc = _CRC[(crc ^ b) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked(data):
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data):
  length = struct.pack("<Q", len(data))
  return length + struct.pack("<I", _masked(length)) + data + struct.pack("<I", _masked(data))


def _varint(n):
  out = bytearray()
  while True:
    out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
    n >>= 7
    if not n:
      return bytes(out)


def _bytes_field(number, payload):
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def event(step, wall, scalars=None, version=None, start=False):
  """One serialised Event: a file's version line, a SessionLog START, or `scalars` ({tag: float}) at `step`."""
  out = b"\x09" + struct.pack("<d", wall) + b"\x10" + _varint(step)
  if version:
    out += _bytes_field(3, version.encode())
  if start:
    out += _bytes_field(7, b"\x08\x01")
  if scalars:
    values = b"".join(_bytes_field(1, _bytes_field(1, tag.encode()) + b"\x15" + struct.pack("<f", v))
                      for tag, v in scalars.items())
    out += _bytes_field(5, values)
  return out


def model_scalars(row):
  """{tag: value} of one metrics row; {} for a diverged model."""
  if row.get("diverged"):
    return {}
  out = {"accuracy/train": row["train_acc"], "accuracy/test": row["test_acc"], "loss/train": row["train_loss"],
         "loss/test": row["test_loss"]}
  out.update({f"stable_rank/{k}": v for k, v in row["stable_rank"].items()})
  return {k: v for k, v in out.items() if v is not None and math.isfinite(v)}


def mean_scalars(rows):
  """{tag: mean over the models that have not diverged} of one cohort's rows at one step, and `diverged`."""
  kept = [model_scalars(r) for r in rows if not r.get("diverged")]
  tags = sorted({t for s in kept for t in s})
  out = {t: sum(s[t] for s in kept if t in s) / sum(t in s for s in kept) for t in tags}
  out["diverged"] = float(len(rows) - len(kept))
  return out


class Writer:
  """Appends each evaluation's rows to the run's event files (one new file per run directory per process)."""

  def __init__(self, workdir, step=0):
    self.root, self.step = wd.join(workdir, FOLDER), step
    self.name = f"events.out.tfevents.{time.time():.0f}.{socket.gethostname()}.{os.getpid()}"
    self.files, self.started = wd.Appenders(), set()

  def write(self, rows):
    wall, by_run, cohorts = time.time(), {}, {}
    for r in rows:
      by_run[wd.join(self.root, r["cohort"], f"model_{r['model']}")] = (r["step"], model_scalars(r))
      cohorts.setdefault(r["cohort"], []).append(r)
    for name, rs in cohorts.items():
      by_run[wd.join(self.root, name, "mean")] = (rs[0]["step"], mean_scalars(rs))
    data = {}
    for run, (step, scalars) in by_run.items():
      p = wd.join(run, self.name)
      out = b""
      if p not in self.started:
        out = record(event(0, wall, version="brain.Event:2")) + record(event(self.step, wall, start=True))
      self.started.add(p)
      if scalars:
        out += record(event(step, wall, scalars))
      if out:
        data[p] = out
    with disk.writing(self.root):
      self.files.write(data)

  def close(self):
    self.files.close()
