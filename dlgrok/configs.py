"""The experiment argument grammar shared by every experiments/*.py: `get_config('ffn,r32,f80,seeds=3')`.

Tokens, comma-separated, any order: layer-group words; `rN` absolute ranks; `pX` rank percents (`p12.5`);
`fX` train percent; `wdX` weight decays; `key=value` for any config field. Several ranks (or weight decays)
make a sweep in one cohort.
"""
import math
import re

import ml_collections

SPACINGS = ("log", "linear")
PRECISIONS = ("highest", "high", "default", "float32", "tensorfloat32", "bfloat16")


class ConfigError(ValueError):
  """A bad experiment argument or config value; the message names it and what is allowed."""


UINT32 = 2**32  # seeds are uint32 PRNG keys
POSITIVE_INTS = ("width", "heads", "layers", "block", "n_train", "epochs", "batch_size", "eval_points", "p",
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
  return "p", int(x) if x == int(x) else x


def rank_token(kind, val):
  return f"{kind}{val}"


def split_tokens(arg):
  return [t.strip() for t in (arg or "").split(",") if t.strip()]


def coerce(config, key, text):
  """Parses `text` as the type of config[key]."""
  cur = config[key]
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


def apply_arg(config, arg, group_words):
  """Applies the argument string to `config` (an ml_collections.ConfigDict) and returns it."""
  groups, ranks, wds, fracs, keys = [], [], [], [], []

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
    elif re.fullmatch(r"[rp][0-9.eE+-]+", tok):
      once(ranks, rank_token(*parse_rank_token(tok)), tok)
    elif re.fullmatch(r"f[0-9.eE+-]+", tok):
      pct = parse_number(tok[1:], f"train fraction {tok!r}")
      if not 0 < pct < 100:
        raise ConfigError(f"train fraction {tok!r} is outside (0, 100) percent")
      once(fracs, pct, tok)
      if len(fracs) > 1:
        raise ConfigError(f"{tok!r}: one train fraction per run (fX given twice)")
      config.frac = pct / 100
    elif re.fullmatch(r"wd[0-9.eE+-]+", tok):
      once(wds, f"{parse_weight_decay(tok[2:]):g}", tok)
    else:
      raise ConfigError(
          f"unknown token {tok!r}; allowed: group words {', '.join(group_words)}; "
          "rN (rank), pX (percent of full rank), fX (train percent), wdX (weight decay), key=value")
  if groups:
    config.group = ",".join(groups)
  if ranks:
    config.ranks = ",".join(ranks)
  if wds:
    config.weight_decays = ",".join(wds)
  return config


def parse_weight_decay(text):
  x = parse_number(text, "weight decay")
  if not x >= 0:
    raise ConfigError(f"weight decay {text}: must be >= 0")
  return x


def weight_decays(c):
  """The run's weight decays: `weight_decays` (one model per value and seed) or else [weight_decay]."""
  out = [parse_weight_decay(t) for t in split_tokens(c.get("weight_decays", ""))] or [c.weight_decay]
  if len(set(out)) < len(out):
    raise ConfigError(f"weight_decays={c.weight_decays!r} repeats a value; give each once")
  return out


def base(**fields):
  """A ConfigDict with the fields every experiment shares, updated with `fields`."""
  c = ml_collections.ConfigDict()
  c.task = ""
  c.group = "none"
  c.ranks = ""  # comma-separated rank tokens; empty = the paper's ranks for the group
  c.baseline = True
  c.seeds = 5
  c.seed = 0
  c.frac = 0.5
  c.steps = 0.0  # 0 = the paper's step count for the train fraction
  c.batch_size = 512
  c.lr = 1e-3
  c.weight_decay = 0.0
  c.weight_decays = ""  # comma-separated; several = a weight-decay sweep in one cohort; empty = weight_decay
  c.init_scale = 1.0  # every initial parameter is multiplied by this (Omnigrok's alpha), before factorising
  c.eval_points = 200
  c.eval_spacing = "log"  # log: ~eval_points log-spaced steps; linear: every steps/eval_points steps
  c.matmul_precision = "highest"
  c.init = "torch"
  c.data_dir = ""
  c.eval_chunk = 0  # examples per evaluation pass (bounds memory at models x eval_chunk); 0 = all at once
  c.progress_seconds = 10.0
  c.devices = 0  # devices to spread the models over; 0 = all
  c.checkpoint_minutes = 5.0  # between evaluation points, a checkpoint at the first chunk boundary after this long
  c.update(fields)
  return c


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
  weight_decays(c)
  if c.get("eval_chunk", 0) < 0:
    raise ConfigError(f"eval_chunk={c.eval_chunk}: must be >= 0")
  for tok in split_tokens(c.ranks):
    if not re.fullmatch(r"[rp][0-9.eE+-]+", tok):
      raise ConfigError(f"ranks={c.ranks!r}: {tok!r} is not a rank token (rN or pX)")
    parse_rank_token(tok)
