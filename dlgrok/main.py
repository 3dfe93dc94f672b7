"""Trains an experiment: python -m dlgrok.main --config=experiments/mod97.py:ffn,r32 [--workdir=runs/x].

--workdir defaults to runs/<experiment>-<argument>[-<overrides>]. Bad configs exit with status 2 and one line.
"""
import logging as std_logging
import os
import re
import shlex
import sys

from dlgrok import signals

signals.install()  # before the slow imports: a signal during start-up still ends with the resume line

import jax  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from dlgrok import configs, disk, inputs, train  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiments/<family>.py:<argument>", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "output directory (default: runs/<experiment>-<argument>)")
_ALLOW = flags.DEFINE_bool("allow_config_change", False, "continue a workdir whose config.json differs")
_DRY = flags.DEFINE_bool("dry_run", False, "check the config and data, print the plan and exit; writes nothing")
EXIT_CODES = {"SIGHUP": 129, "SIGINT": 130, "SIGTERM": 143}


def default_workdir(config_arg, overrides):
  """runs/mod97-ffn_r32 for experiments/mod97.py:ffn,r32 (overrides appended as -field=value)."""
  path, _, arg = config_arg.partition(":")
  name = os.path.splitext(os.path.basename(path))[0]
  parts = [name, arg.replace(",", "_") if arg else "none"]
  whole = lambda v: int(v) if isinstance(v, float) and v.is_integer() else v  # steps=300, not steps=300.0
  parts += [f"{k}={whole(v)}" for k, v in sorted(overrides.items())]
  return os.path.join("runs", re.sub(r"[^A-Za-z0-9_.=+-]", "_", "-".join(parts)))


def maybe_initialize_distributed():
  """jax.distributed.initialize() when asked (DLGROK_DISTRIBUTED=1, as launch/ sets) or under a multi-task srun;
  it detects TPU pods and SLURM itself. A single host never needs it."""
  if os.environ.get("DLGROK_DISTRIBUTED") == "1" or int(os.environ.get("SLURM_NTASKS", "1")) > 1:
    jax.distributed.initialize()


def main(argv, config):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if config is None:
    print("error: --config=experiments/<family>.py:<argument> is required (see experiments/)", file=sys.stderr)
    sys.exit(2)
  if not flags.FLAGS["verbosity"].present:  # orbax logs every save at INFO; --verbosity=0 brings it back
    logging.set_verbosity(logging.WARNING)
  std_logging.getLogger("absl").addFilter(disk.Unlogged())
  maybe_initialize_distributed()
  workdir = _WORKDIR.value or default_workdir(flags.FLAGS["config"].config_filename,
                                              config_flags.get_override_values(flags.FLAGS["config"]))
  try:
    inputs.check_backend()
    inputs.check_workdir_contents(workdir)
    if _DRY.value:
      plan = train.prepare(config, workdir, allow_config_change=_ALLOW.value)
      print(f"{train.describe(plan)}; {plan.n_models * plan.steps:,} model-steps; workdir {workdir} "
            "(dry run: nothing written)")
      return
    train.run(config, workdir, allow_config_change=_ALLOW.value)
  except inputs.ERRORS as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except disk.Full as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  except train.Interrupted as e:
    again = " ".join(shlex.quote(a) for a in sys.argv[1:] if not a.startswith("--workdir"))
    where = (f"at step {e.step}; saved to {workdir}/checkpoints" if e.step is not None
             else "during start-up, before training")
    print(f"interrupted by {e.signal_name} {where}; resume with: python -m dlgrok.main {again} "
          f"--workdir={shlex.quote(workdir)}", file=sys.stderr)
    sys.exit(EXIT_CODES.get(e.signal_name, 1))


def preflight(argv):
  """Builds the config from --config=FILE:ARG and checks the --config.FIELD=VALUE overrides (names and values)
  before absl does, so that a bad argument fails with one line instead of a flag-parsing traceback; returns the
  config with the overrides applied (or None without --config)."""
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if spec is None:
    return None
  path, _, arg = spec.partition(":")
  config = configs.load(path, arg)
  for a in argv:
    if a.startswith("--config."):
      field, eq, value = a[len("--config."):].partition("=")
      if field not in config:
        raise configs.ConfigError(f"unknown config field {field!r} in {a}; fields: {', '.join(sorted(config))}")
      if not eq:
        raise configs.ConfigError(f"{a}: give a value, --config.{field}=VALUE")
      config[field] = configs.coerce(config, field, value)
  return config


def run():
  try:
    config = preflight(sys.argv[1:])
  except inputs.ERRORS as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  # absl parses the flags again (the --config flag declares them); training takes the config built above, so
  # there is one parser of values and one error style
  app.run(lambda argv: main(argv, config))


if __name__ == "__main__":
  run()
