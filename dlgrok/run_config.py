"""config.json: a run's config as its workdir holds it. Written by train; read, in today's form (`upgrade`), by
train's resume check, plot, inspect, sweep and reproduce."""
import json
import os

import ml_collections

from dlgrok import configs, disk, workdir as wd


class ConfigFileError(ValueError):
  """A config.json that cannot be read; the message names it and what to do."""


def path(workdir):
  return wd.join(workdir, "config.json")


def as_json(config):
  """The config as config.json holds it: `steps` whole (a float field so that steps=1e4 parses)."""
  d = config.to_dict()
  if float(d["steps"]).is_integer():
    d["steps"] = int(d["steps"])
  return d


def write(config, workdir):
  p = path(workdir)
  with disk.writing(p):  # whole: config.json is the new one or the old one
    wd.write(p, json.dumps(as_json(config), indent=2, sort_keys=True))


def read(workdir, need="task"):
  """<workdir>/config.json as a dict in today's form; ConfigFileError for a directory, unreadable bytes, or JSON
  that is not an object with the field `need`."""
  p = path(workdir)
  if wd.isdir(p):
    raise ConfigFileError(f"{p} is a directory, not a file; move it away (a run writes its config there)")
  try:
    d = json.loads(wd.read_bytes(p).decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ConfigFileError(f"{p} is not valid JSON ({type(e).__name__}); restore it from a copy (python -m "
                          "dlgrok.main writes a new one where there is none)") from None
  except OSError as e:
    raise ConfigFileError(f"{p} cannot be read ({e.strerror})") from None
  if not isinstance(d, dict) or need not in d:
    raise ConfigFileError(f"{p} is JSON but not a dlgrok config (no {need} field); restore it or give another "
                          "workdir")
  return upgrade(d)


def load(workdir):
  """<workdir>/config.json as a ConfigDict (tuples where configs hold tuples)."""
  d = read(workdir)
  if isinstance(d.get("steps"), int):  # config.json holds it whole; the config field is a float
    d["steps"] = float(d["steps"])
  return ml_collections.ConfigDict({k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def upgrade(d):
  """A config.json dict written by an earlier version, in today's form: rank and weight-decay strings as lists of
  numbers, and the fields then implied by the task (MNIST's [0, 1] pixels, App. F's MSE, App. E's SGD)."""
  d = dict(d)
  if isinstance(d.get("ranks"), str):
    parsed = [configs.parse_rank_token(t) for t in configs.split_tokens(d["ranks"])]
    d["ranks"], d["pcts"] = [v for k, v in parsed if k == "r"], [float(v) for k, v in parsed if k == "p"]
    experiment = os.path.join(configs.EXPERIMENTS, f"{d.get('task')}.py")
    if not parsed and os.path.isfile(experiment):  # "" meant the experiment's ranks for the group
      defaults = configs.load(experiment, d.get("group", "none"))
      d["ranks"], d["pcts"] = list(defaults.ranks), list(defaults.pcts)
  if isinstance(d.get("weight_decays"), str):
    d["weight_decays"] = [float(x) for x in configs.split_tokens(d["weight_decays"])] or [d.get("weight_decay", 0.0)]
  implied = {"mnist_grok": {"pixels": "unit", "loss": "mse"}, "mnist_wd": {"pixels": "unit", "optimizer": "sgd"}}
  for k, v in implied.get(d.get("task"), {}).items():
    d.setdefault(k, v)
  return d
