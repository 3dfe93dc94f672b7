"""metrics.jsonl: one JSON object per (evaluation step, model); written by train, read (in today's form) by plot,
reproduce and the regression check."""
import gzip
import io
import json
import math
import warnings

from dlgrok import decompose, disk, run_config, signals, workdir as wd

WALL_FIELDS = ("wall",)  # fields that differ between otherwise identical runs
VALUES = ("train_loss", "train_acc", "test_loss", "test_acc")


class MetricsError(ValueError):
  """A metrics.jsonl that cannot be read; the message names the file and line."""


def rows(cohort, step, ev, wall):
  """The rows of one cohort at `step` (this module owns their schema), from evaluate()'s per-model outputs on
  the host."""
  return [row(step, {k: float(ev[k][i]) for k in VALUES}, {k: float(v[i]) for k, v in ev["stable_rank"].items()},
              wall, **model_fields(cohort, i)) for i in range(len(cohort.models))]


def model_fields(cohort, i):
  """What model i of `cohort` was trained as: the fields of its rows that do not change with the step."""
  m = cohort.models[i]
  return {"model": cohort.first + i, "cohort": cohort.name, "seed": m.seed, "group": ",".join(cohort.words) or "none",
          "rank": m.rank.label, "pct": m.pct, "frac": m.frac, "variant": cohort.row_factorisation,
          "remedy": cohort.remedy.label, "remedy_params": m.remedy_params,
          "layer_ranks": {decompose.layer_name(p): k for p, k in m.layer_ranks.items()},
          "weight_decay": float(m.weight_decay), **{f"{k}_params": v for k, v in m.counts.items()},
          "compression": m.counts["trained"] / m.counts["dense"]}


def row(step, values, stable_rank, wall=0.0, **model):
  """One row: `model` (model_fields' fields; upgrade fills those a test leaves out), `values` (VALUES) and stable
  ranks at `step`. A model is diverged when a value or stable rank is not finite (argmax accuracies of NaN
  parameters are finite): its values, gap and stable ranks are null."""
  diverged = not all(math.isfinite(v) for v in (*values.values(), *stable_rank.values()))
  if diverged:
    values, stable_rank = dict.fromkeys(values), dict.fromkeys(stable_rank)
  gap = values["train_acc"] - values["test_acc"] if not diverged else None
  return upgrade({"step": step, **model, **values, "diverged": diverged, "gap": gap, "stable_rank": stable_rank,
                  "wall": round(wall, 3)})


def upgrade(r, config=None):
  """Row `r` (written by any version) in today's form, in place: variant ('usv' for a decomposed model), remedy
  ('none') and remedy_params ({}), and frac and weight_decay from its run's config.json dict `config`."""
  if "variant" not in r:
    r["variant"] = None if r["group"] == "none" else "usv"
  r["remedy"] = r.get("remedy") or "none"
  r["remedy_params"] = r.get("remedy_params") or {}
  for k in ("frac", "weight_decay"):
    if k not in r and config is not None:
      r[k] = config.get(k)
  return r


def path(workdir):
  return wd.join(workdir, "metrics.jsonl")


class Writer:
  """Appends rows to <workdir>/metrics.jsonl, synced after every write (on a bucket one evaluation's rows are
  appended whole); a full disk raises disk.Full (a rerun drops the part of a row written)."""

  def __init__(self, workdir, fault=signals.never):
    self.path, self.fault = path(workdir), fault
    with disk.writing(self.path):
      self._f = wd.Appender(self.path)

  def write(self, rows):
    with disk.writing(self.path):
      self._f.write([json.dumps(finite(row), sort_keys=True, allow_nan=False) + "\n" for row in rows],
                    between=lambda: self.fault("write-metrics"))

  def close(self):
    with disk.writing(self.path):
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


def parse(lines, name):
  """[(line, row)] of metrics lines; a truncated or corrupt LAST line (what a kill mid-write leaves) is dropped
  with a warning, a corrupt line before it is an error naming it."""
  rows = []
  for i, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      rows.append((line if line.endswith("\n") else line + "\n", json.loads(line)))
    except json.JSONDecodeError:
      if any(l.strip() for l in lines[i + 1:]):
        raise MetricsError(f"{name} line {i + 1} is not valid JSON; fix or remove that line") from None
      warnings.warn(f"{name}: dropped its truncated last line {i + 1} ({line.strip()[:60]!r})")
  return rows


def read(workdir):
  """All rows of <workdir>/metrics.jsonl (a workdir or the file itself), or of its gzipped copy
  metrics.jsonl.gz (as results/ keeps them), upgraded (with the config.json beside them, where there is one)."""
  p = workdir if workdir.endswith((".jsonl", ".jsonl.gz")) else path(workdir)
  if not wd.exists(p) and wd.exists(p + ".gz"):
    p += ".gz"
  data = wd.read_bytes(p)
  if p.endswith(".gz"):
    data = gzip.decompress(data)
  rows = [row for _, row in parse(io.StringIO(data.decode()).readlines(), p)]
  config = None
  if any("frac" not in r or "weight_decay" not in r for r in rows) and wd.exists(run_config.path(wd.parent(p))):
    config = run_config.read(wd.parent(p))
  return [upgrade(r, config) for r in rows]


def truncate_from(workdir, step):
  """Drops rows with step >= `step` (a run resuming at `step` writes them again) and a truncated last line;
  returns the last kept row's wall (0.0 if none), from which the resumed run's wall counts on."""
  p = path(workdir)
  if not wd.exists(p):
    return 0.0
  kept = [(line, row) for line, row in parse(io.StringIO(wd.read_text(p)).readlines(), p) if row["step"] < step]
  with disk.writing(p):  # whole: a kill mid-write leaves the old file
    wd.write(p, "".join(line for line, _ in kept))
  return max((row.get("wall", 0.0) for _, row in kept), default=0.0)


def _quiet_rows(workdir):
  """The rows of <workdir>/metrics.jsonl (none if it does not exist); quiet about a truncated last line
  (truncate_from warns when it drops it)."""
  if not wd.exists(path(workdir)):
    return []
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return read(workdir)


def models_at(workdir, step):
  """The models that have a row at `step` in <workdir>/metrics.jsonl."""
  return {row["model"] for row in _quiet_rows(workdir) if row["step"] == step}


def steps(workdir):
  """The steps that have rows in <workdir>/metrics.jsonl (none if it does not exist)."""
  return {row["step"] for row in _quiet_rows(workdir)}
