"""The experiment argument grammar shared by every experiments/*.py: `get_config('ffn,r32,f80,seeds=3')`.

Tokens, comma-separated, any order: layer-group words; `rN` absolute ranks; `pX` rank percents (`p12.5`);
`fX` train percent; `wdX` weight decays; `key=value` for any config field. Several ranks (or weight decays)
make a sweep in one cohort. Parsed once, into numbers: config.ranks (ints), config.pcts and
config.weight_decays (floats) are tuples; config.remedies holds each remedy set's label in REMEDIES order. The
plan (cohorts.py) makes them `Remedy` values and the ranks `Rank` values once; rows keep the labels, and readers
of rows turn them back with Rank.from_label and Remedy.from_label, not by splitting them.
"""
import dataclasses
import importlib.util
import inspect
import math
import os
import re

import ml_collections

SPACINGS = ("log", "linear")
PRECISIONS = ("highest", "high", "default", "float32", "tensorfloat32", "bfloat16")


class ConfigError(ValueError):
  """A bad experiment argument or config value; the message names it and what is allowed."""


def shipped(name):
  """The folder experiments/ or benchmarks/: inside the package where it is installed (pip install .), else the
  checkout's, beside the package."""
  here = os.path.dirname(os.path.abspath(__file__))
  inside = os.path.join(here, name)
  return inside if os.path.isdir(inside) else os.path.join(os.path.dirname(here), name)


EXPERIMENTS = shipped("experiments")
TUPLES = {"ranks": int, "pcts": float, "weight_decays": float, "fracs": float, "ema_alphas": float,
          "ema_lambs": float, "ma_windows": int, "ma_lambs": float, "decays": float}  # tuples of numbers
WORD_TUPLES = ("factorisations", "remedies")  # fields holding tuples of words
FACTORISATIONS = ("usv", "uv", "diag", "s")  # how a decomposed layer is factorised (decompose.py)
REMEDIES = ("grokfast_ema", "grokfast_ma", "stablemax", "orthograd", "decay", "adam_l2",
            "warm0")  # joined by '+' into a remedy set; adam_l2 and warm0 change the optimiser recipe
EMA_ALPHA, EMA_LAMB = 0.98, 2.0  # the remedies' defaults: grokfast-EMA alpha and lambda,
MA_WINDOW, MA_LAMB = 100, 5.0  # grokfast-MA window and lambda,
DECAY = 1.0  # the weight decay of the 'decay' and 'adam_l2' cohorts
FRAC_TOKEN = re.compile(r"f[0-9.eE+-]+")  # fX: the train percent
UINT32 = 2**32  # seeds are uint32 PRNG keys
POSITIVE_INTS = ("width", "heads", "layers", "block", "n_train", "epochs", "batch_size", "p",
                 "patch", "mlp_ratio")  # each >= 1 where a task has it
RANGES = {  # field -> (low, high, low included, what is allowed)
    "lr": (0, math.inf, False, "> 0"), "weight_decay": (0, math.inf, True, ">= 0"),
    "init_scale": (0, math.inf, False, "> 0"), "eps": (0, math.inf, False, "> 0"),
    "b1": (0, 1, True, "in [0, 1)"), "b2": (0, 1, True, "in [0, 1)"), "momentum": (0, 1, True, "in [0, 1)"),
    "warmup_start": (0, math.inf, True, ">= 0"), "end_lr": (0, math.inf, True, ">= 0"),
    "checkpoint_minutes": (0, math.inf, True, ">= 0"), "progress_seconds": (0, math.inf, False, "> 0"),
}


def parse_number(text, what):
  """A finite number from `text`; ConfigError naming `what` otherwise (nan, inf and 1e400 included)."""
  try:
    x = float(text)
  except ValueError:
    raise ConfigError(f"{what}: {text!r} is not a number") from None
  if not math.isfinite(x):
    raise ConfigError(f"{what}: {text!r} is not a finite number")
  return x


def parse_rank_token(tok):
  """'r32' -> ('r', 32); 'p12.5' -> ('p', 12.5). Raises ConfigError for bad values."""
  kind, val = tok[0], tok[1:]
  x = parse_number(val, f"rank token {tok!r}")
  if kind == "r":
    if x != int(x) or x < 1:
      raise ConfigError(f"rank {tok!r}: an absolute rank must be a whole number >= 1 (and <= the layer's full rank)")
    return "r", int(x)
  if not 0 < x <= 100:
    raise ConfigError(f"rank percent {tok!r} is outside (0, 100]")
  return "p", x


@dataclasses.dataclass(frozen=True)
class Rank:
  """A model's rank: kind 'r' (value: an absolute rank), 'p' (value: percent of the full rank) or 'full' (a dense
  model, no value)."""
  kind: str
  value: float | None = None

  @property
  def label(self):
    """'r32', 'p50', 'p12.5', 'full': how a rank is named in rows and figures."""
    return "full" if self.kind == "full" else f"{self.kind}{self.value:g}"

  @property
  def text(self):
    """'rank 32', 'rank 12.5 %', 'full': as figures write it."""
    return self.kind if self.kind == "full" else f"rank {self.value:g}" + " %" * (self.kind == "p")

  @staticmethod
  def from_label(label):
    """The Rank of a label written in a metrics row."""
    return FULL if label == "full" else Rank(*parse_rank_token(label))


FULL = Rank("full")


@dataclasses.dataclass(frozen=True)
class Remedy:
  """A remedy set: its words in REMEDIES order; () for none."""
  words: tuple = ()

  def has(self, *words):
    """Whether the set holds any of `words`."""
    return any(w in self.words for w in words)

  @property
  def label(self):
    """'stablemax+orthograd', 'none': as cohort names and metrics rows write it."""
    return "+".join(self.words) or "none"

  @staticmethod
  def from_label(label):
    """The Remedy of a label written in a metrics row ('none' included)."""
    return NO_REMEDY if label == "none" else Remedy.parse(label)

  @staticmethod
  def parse(text):
    """'orthograd+stablemax' -> Remedy(('stablemax', 'orthograd')). ConfigError for a word not in REMEDIES, a
    repeated word or two alternatives together."""
    words = text.split("+")
    bad = [w for w in words if w not in REMEDIES]
    if bad or len(set(words)) < len(words):
      raise ConfigError(f"remedy {text!r}: give each of {', '.join(REMEDIES)} at most once, joined by +")
    if {"grokfast_ema", "grokfast_ma"} <= set(words):
      raise ConfigError(f"remedy {text!r}: grokfast_ema and grokfast_ma are alternatives; use one of them")
    if {"decay", "adam_l2"} <= set(words):
      raise ConfigError(f"remedy {text!r}: decay (decoupled, AdamW) and adam_l2 (coupled, Adam) are alternatives; "
                        "use one of them")
    return Remedy(tuple(w for w in REMEDIES if w in words))


NO_REMEDY = Remedy()


def is_remedy_token(tok):
  return all(w in REMEDIES for w in tok.split("+"))


def split_tokens(arg):
  return [t.strip() for t in (arg or "").split(",") if t.strip()]


def coerce(config, key, text):
  """Parses `text` as the type of config[key] (for TUPLES fields: comma-separated numbers, brackets allowed)."""
  cur = config[key]
  if key in WORD_TUPLES:
    return tuple(split_tokens(text.strip("()[] ").replace("'", "").replace('"', "")))
  if key in TUPLES:
    kind = TUPLES[key]
    values = tuple(parse_number(t, key) for t in split_tokens(text.strip("()[] ")))
    if kind is int and any(v != int(v) for v in values):
      raise ConfigError(f"{key}={text}: expected whole numbers")
    return tuple(kind(v) for v in values)
  if isinstance(cur, bool):
    if text.lower() not in ("true", "false", "1", "0"):
      raise ConfigError(f"{key}={text}: expected true or false")
    return text.lower() in ("true", "1")
  if isinstance(cur, int):
    x = parse_number(text, key)
    if x != int(x):
      raise ConfigError(f"{key}={text}: expected a whole number")
    return int(x)
  if isinstance(cur, float):
    return parse_number(text, key)
  if not isinstance(cur, str):
    raise ConfigError(f"{key}={text}: {key} cannot be set from the command line")
  return text


def apply_arg(config, arg, task, default_ranks=None):
  """Applies the argument string to `config` (an ml_collections.ConfigDict) for `task` (its group and variant
  words) and returns it. Without rank tokens, decomposed layer groups get default_ranks(groups) -> (ranks, pcts):
  the experiment's (paper's) ranks."""
  group_words = task.words()
  groups, ranks, pcts, wds, fracs, keys, forms, remedies = [], [], [], [], [], [], [], []

  def once(seen, value, tok):
    if value in seen:
      raise ConfigError(f"{tok!r} repeats an earlier token of the argument; give each value once")
    seen.append(value)

  for tok in split_tokens(arg):
    if "=" in tok:
      key, val = tok.split("=", 1)
      if key not in config:
        raise ConfigError(f"unknown config field {key!r}; fields: {', '.join(sorted(config.keys()))}")
      once(keys, key, tok)
      config[key] = coerce(config, key, val)
    elif tok in group_words:
      once(groups, tok, tok)
    elif tok in FACTORISATIONS:
      once(forms, tok, tok)
    elif is_remedy_token(tok):
      once(remedies, Remedy.parse(tok).label, tok)
    elif re.fullmatch(r"[rp][0-9.eE+-]+", tok):
      kind, value = parse_rank_token(tok)
      once(ranks if kind == "r" else pcts, value, tok)
    elif FRAC_TOKEN.fullmatch(tok):
      pct = parse_number(tok[1:], f"train fraction {tok!r}")
      if not 0 < pct < 100:
        raise ConfigError(f"train fraction {tok!r} is outside (0, 100) percent")
      once(fracs, pct, tok)
    elif re.fullmatch(r"wd[0-9.eE+-]+", tok):
      once(wds, parse_weight_decay(tok[2:]), tok)
    else:
      raise ConfigError(
          f"unknown token {tok!r}; allowed: group words {', '.join(group_words)}; factorisations "
          f"{', '.join(FACTORISATIONS)}; remedies {', '.join(REMEDIES)} (joined by +); rN (rank), pX (percent of "
          "full rank), fX (train percent), wdX (weight decay), key=value")
  if groups:
    config.group = ",".join(groups)
  if ranks or pcts:
    config.ranks, config.pcts = tuple(ranks), tuple(float(p) for p in pcts)
  elif default_ranks and not (config.ranks or config.pcts):
    decomposed = tuple(w for w in split_tokens(config.group) if w in task.groups and w != "none")
    if decomposed:
      r, p = default_ranks(decomposed)
      config.ranks, config.pcts = tuple(r), tuple(float(x) for x in p)
  if wds:
    config.weight_decays = tuple(wds)
  if fracs:  # one: the run's fraction; several: a fraction per model, each model its own split
    config.frac = fracs[0] / 100
    config.fracs = tuple(f / 100 for f in fracs) if len(fracs) > 1 else ()
  if forms:
    config.factorisations = tuple(forms)
  if remedies:
    config.remedies = tuple(remedies)
  return config


def parse_weight_decay(text):
  x = parse_number(text, "weight decay")
  if not x >= 0:
    raise ConfigError(f"weight decay {text}: must be >= 0")
  return x


def base(**fields):
  """A ConfigDict with the fields every experiment has, at their mechanism defaults (PyTorch's optimiser
  defaults among them), updated with the experiment's `fields`."""
  c = ml_collections.ConfigDict()
  c.task = ""
  c.group = "none"
  c.ranks = ()  # absolute ranks; with pcts, one model per rank and seed; none given: the experiment's ranks
  c.pcts = ()  # ranks as percents of each layer's full rank
  c.baseline = True
  c.seeds = 1
  c.seed = 0
  c.frac = 0.5
  c.steps = 0.0  # 0 = the experiment's count (for the train fraction, or from epochs)
  c.batch_size = 1
  c.optimizer = "adamw"
  c.lr = 1e-3
  c.b1, c.b2, c.eps, c.momentum = 0.9, 0.999, 1e-8, 0.0
  c.weight_decay = 0.0
  c.weight_decays = ()  # several = a weight-decay sweep in one cohort; empty = (weight_decay,)
  c.loss = "xent"
  c.init = "torch"
  c.init_scale = 1.0  # every initial parameter is multiplied by this (Omnigrok's alpha), before factorising
  c.eval_points = 0  # 0: ~200 log-spaced steps, fewer where evaluating would cost > 10 % of the training FLOPs
  c.eval_spacing = "log"  # log: ~eval_points log-spaced steps; linear: every steps/eval_points steps
  c.matmul_precision = "highest"
  c.data_dir = ""
  c.eval_chunk = 0  # examples per evaluation pass (bounds memory at models x eval_chunk); 0 = all at once
  c.progress_seconds = 10.0
  c.devices = 0  # devices to spread the models over; 0 = all
  c.model_batch = 0  # models per pass of a step: 0 = 1 on one CPU device (faster there), all (vmap) elsewhere
  c.checkpoint_minutes = 5.0  # between evaluation points, a checkpoint at the first chunk boundary after this long
  c.fracs = ()  # several training fractions: one model per fraction (and seed, rank, ...), each its own split
  c.factorisations = ()  # decomposed cohorts, one per factorisation (usv uv diag s); empty: usv
  c.remedies = ()  # remedy sets ('grokfast_ema', 'stablemax+orthograd', 'decay'): a cohort each, beside the others
  c.remedy_groups = False  # remedies also on the decomposed cohorts (else on the baseline model only)
  c.ema_alphas, c.ema_lambs = (EMA_ALPHA,), (EMA_LAMB,)  # grokfast-EMA alpha x lambda: per-model sweeps in its cohorts
  c.ma_windows, c.ma_lambs = (MA_WINDOW,), (MA_LAMB,)  # grokfast-MA window x lambda
  c.decays = (DECAY,)  # weight decays of the 'decay' and 'adam_l2' remedies' cohorts
  c.update(fields)
  return c


def load(path, arg=""):
  """get_config(arg) of the experiment file at `path` (experiments/<family>.py, where no such file is here: the
  one dlgrok ships); ConfigError for a missing or broken file."""
  if not os.path.isfile(path) and os.path.dirname(os.path.normpath(path)) == "experiments":
    ours = os.path.join(EXPERIMENTS, os.path.basename(path))
    path = ours if os.path.isfile(ours) else path
  if not os.path.isfile(path):
    raise ConfigError(f"config file {path!r} not found; see experiments/ for the experiment files")
  if not path.endswith(".py"):
    raise ConfigError(f"config file {path!r} is not a Python file; give experiments/<family>.py")
  spec = importlib.util.spec_from_file_location("dlgrok_experiment", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # noqa: BLE001 - the user's file: one line, not a traceback into it
    raise ConfigError(f"{path} failed to load: {type(e).__name__}: {one_line(e)}") from None
  get_config = getattr(module, "get_config", None)
  if not callable(get_config):
    raise ConfigError(f"{path} has no get_config(arg) function; see experiments/mod97.py for the form")
  try:
    inspect.signature(get_config).bind(arg)
  except TypeError:
    raise ConfigError(f"{path}: get_config must take one argument, the text after ':' "
                      "(def get_config(arg=''):); see experiments/mod97.py") from None
  try:
    config = get_config(arg)
  except ConfigError:
    raise
  except Exception as e:  # noqa: BLE001 - as above
    raise ConfigError(f"{path}: get_config({arg!r}) failed: {type(e).__name__}: {one_line(e)}") from None
  if not isinstance(config, ml_collections.ConfigDict) or "task" not in config:
    raise ConfigError(f"{path}: get_config returned a {type(config).__name__}, not a config with a task; build it "
                      "with configs.base(task=...) as experiments/mod97.py does")
  return config


def one_line(e):
  """An exception's message on one line (the first, shortened)."""
  lines = str(e).strip().splitlines()
  return lines[0][:200] if lines else ""


def check_number(c, key, low, high, low_ok, allowed):
  x = c[key]
  if not (math.isfinite(x) and (low <= x if low_ok else low < x) and x < high):
    raise ConfigError(f"{key}={x:g}: must be {allowed}")


def check_common(c):
  """Checks the fields every task shares; raises ConfigError naming the bad value."""
  if c.seeds < 1:
    raise ConfigError(f"seeds={c.seeds}: need at least 1")
  if not 0 <= c.seed <= UINT32 - c.seeds:
    raise ConfigError(f"seed={c.seed}, seeds={c.seeds}: the seeds seed..seed+seeds-1 must lie in 0..{UINT32 - 1}")
  if not (math.isfinite(c.steps) and c.steps >= 0 and c.steps == int(c.steps)):
    raise ConfigError(f"steps={c.steps:g}: must be a whole number >= 1 (or 0, the default: the paper's count)")
  for key in POSITIVE_INTS:
    if key in c and c[key] < 1:
      raise ConfigError(f"{key}={c[key]}: need at least 1")
  for key, bounds in RANGES.items():
    if key in c:
      check_number(c, key, *bounds)
  if not 0 < c.frac < 1:
    raise ConfigError(f"frac={c.frac} is outside (0, 1)")
  if c.eval_spacing not in SPACINGS:
    raise ConfigError(f"eval_spacing={c.eval_spacing!r}; allowed: {', '.join(SPACINGS)}")
  if c.matmul_precision not in PRECISIONS:
    raise ConfigError(f"matmul_precision={c.matmul_precision!r}; allowed: {', '.join(PRECISIONS)}")
  if c.eval_points < 0:
    raise ConfigError(f"eval_points={c.eval_points}: must be >= 1 (or 0, the default schedule)")
  if c.eval_points == 0 and c.eval_spacing != "log":
    raise ConfigError(f"eval_spacing={c.eval_spacing!r} needs eval_points=N (>= 1); eval_points=0 is the default "
                      "log-spaced schedule")
  if c.get("model_batch", 0) < 0:
    raise ConfigError(f"model_batch={c.model_batch}: must be >= 1 (or 0: by device)")
  if c.eval_chunk < 0:
    raise ConfigError(f"eval_chunk={c.eval_chunk}: must be >= 0")
  for k in c.ranks:
    if k < 1:
      raise ConfigError(f"ranks={tuple(c.ranks)}: rank {k} is below 1")
  for p in c.pcts:
    if not 0 < p <= 100:
      raise ConfigError(f"pcts={tuple(c.pcts)}: rank percent {p:g} is outside (0, 100]")
  for wd in c.weight_decays:
    if not wd >= 0:
      raise ConfigError(f"weight_decays={tuple(c.weight_decays)}: weight decay {wd:g} must be >= 0")
  for key in list(TUPLES) + list(WORD_TUPLES):
    if key in c and len(set(c[key])) < len(c[key]):
      raise ConfigError(f"{key}={tuple(c[key])} repeats a value; give each once")
  check_lab(c)


def check_lab(c):
  """The lab's fields: fractions, factorisations, remedies and their per-model hyperparameters."""
  for f in c.get("fracs", ()):
    if not 0 < f < 1:
      raise ConfigError(f"fracs={tuple(c.fracs)}: fraction {f:g} is outside (0, 1)")
  for form in c.get("factorisations", ()):
    if form not in FACTORISATIONS:
      raise ConfigError(f"factorisations: {form!r}; allowed: {', '.join(FACTORISATIONS)}")
  for r in c.get("remedies", ()):
    remedy = Remedy.parse(r)
    if remedy.has("warm0") and "warmup_start" not in c:
      raise ConfigError(f"remedy {r!r}: warm0 sets the mod-p warm-up (warmup_start, warmup_steps), which task "
                        f"{c.task!r} does not have")
    if remedy.has("adam_l2") and c.optimizer != "adamw":
      raise ConfigError(f"remedy {r!r}: adam_l2 replaces AdamW by Adam with coupled L2; optimizer={c.optimizer!r} "
                        "(use optimizer=adamw)")
  for key, low, low_ok, high, allowed in (("ema_alphas", 0, True, 1, "in [0, 1)"), ("ema_lambs", 0, True, math.inf,
                                          ">= 0"), ("ma_lambs", 0, True, math.inf, ">= 0"),
                                          ("ma_windows", 1, True, math.inf, ">= 1"),
                                          ("decays", 0, True, math.inf, ">= 0")):
    for x in c.get(key, ()):
      if not ((low <= x if low_ok else low < x) and x < high):
        raise ConfigError(f"{key}={tuple(c[key])}: {x:g} must be {allowed}")
