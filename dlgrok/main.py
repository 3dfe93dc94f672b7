"""Trains an experiment: python -m dlgrok.main --config=experiments/mod97.py:ffn,r32 [--workdir=runs/x].

--config.FIELD=VALUE sets one config field. --workdir defaults to runs/<experiment>-<argument>[-<overrides>].
Bad input exits with status 2 and one line. Only this entry point catches signals: SIGTERM / SIGINT / SIGHUP
save a checkpoint and exit 143 / 130 / 129 with the command that resumes.
"""
from dlgrok import signals

if __name__ == "__main__":  # before the slow imports: a signal during start-up still ends with the resume line
  CATCHER = signals.Catcher().install()

import logging as std_logging  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402

import jax  # noqa: E402
from absl import flags, logging  # noqa: E402

from dlgrok import configs, disk, inputs, train  # noqa: E402


def parser():
  ap = inputs.Parser(prog="python -m dlgrok.main", description=__doc__.splitlines()[0], allow_abbrev=False)
  ap.add_argument("--config", help="experiments/<family>.py:<argument>; then --config.FIELD=VALUE for any field")
  ap.add_argument("--workdir", help="output directory (default: runs/<experiment>-<argument>)")
  ap.add_argument("--allow_config_change", action="store_true", help="continue a workdir whose config.json differs")
  ap.add_argument("--dry_run", action="store_true",
                  help="check the config and data, print the plan and exit; writes nothing")
  ap.add_argument("--verbosity", type=int, help="absl log level (default: warnings only; 0: orbax's notices too)")
  return ap


def parse(argv):
  """The command line, parsed once: its flags, `config` built from --config=FILE:ARG with every
  --config.FIELD=VALUE applied (names and values checked) and `overrides` ({field: value}). Errors (InputError,
  ConfigError) name the bad argument in one line."""
  a, rest = parser().parse_known_args(argv)
  for arg in rest:
    if not arg.startswith("--config."):
      raise inputs.InputError(f"unrecognized arguments: {arg}; see python -m dlgrok.main --help")
  if a.config is None:
    raise inputs.InputError("--config=experiments/<family>.py:<argument> is required (see experiments/)")
  a.config_arg = a.config
  path, _, arg = a.config.partition(":")
  a.config = configs.load(path, arg)
  a.overrides = {}
  for arg in rest:
    field, eq, value = arg[len("--config."):].partition("=")
    if field not in a.config:
      raise configs.ConfigError(f"unknown config field {field!r} in {arg}; fields: {', '.join(sorted(a.config))}")
    if not eq:
      raise configs.ConfigError(f"{arg}: give a value, --config.{field}=VALUE")
    a.config[field] = a.overrides[field] = configs.coerce(a.config, field, value)
  return a


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


def start_logging(verbosity):
  """absl logging as absl's app.run leaves it (its flags parsed with their defaults), at warnings unless asked:
  orbax logs every save at INFO."""
  flags.FLAGS(sys.argv[:1])
  logging.use_absl_handler()
  logging.set_verbosity(logging.WARNING if verbosity is None else verbosity)
  std_logging.getLogger("absl").addFilter(disk.Unlogged())


def main(argv, catcher):
  """Trains what `argv` (the arguments after the program's name) asks, stopping when `catcher` received a signal;
  exits with the status that says how it ended."""
  try:
    a = parse(argv)
  except inputs.ERRORS as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  start_logging(a.verbosity)
  maybe_initialize_distributed()
  workdir = a.workdir or default_workdir(a.config_arg, a.overrides)
  fault = signals.Faults(os.environ["DLGROK_FAULT"]) if os.environ.get("DLGROK_FAULT") else signals.never
  hooks = signals.Hooks(continued=catcher.continued, fault=fault)
  try:
    inputs.check_backend()
    inputs.check_workdir_contents(workdir)
    if a.dry_run:
      plan = train.prepare(a.config, workdir, allow_config_change=a.allow_config_change)
      print(f"{train.describe(plan)}; {plan.n_models * plan.steps:,} model-steps; workdir {workdir} "
            "(dry run: nothing written)")
      return
    train.run(a.config, workdir, allow_config_change=a.allow_config_change, stop=catcher.received, hooks=hooks)
  except inputs.ERRORS as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except disk.Full as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  except train.Interrupted as e:
    again = " ".join(shlex.quote(a) for a in argv if not a.startswith("--workdir"))
    where = (f"at step {e.step}; saved to {workdir}/checkpoints" if e.step is not None
             else "during start-up, before training")
    print(f"interrupted by {e.signal_name} {where}; resume with: python -m dlgrok.main {again} "
          f"--workdir={shlex.quote(workdir)}", file=sys.stderr)
    sys.exit(signals.EXIT_CODES.get(e.signal_name, 1))


def run(catcher=None):
  """The command line's entry (sys.argv); without a catcher, signals keep Python's default handling."""
  main(sys.argv[1:], catcher or signals.Catcher())


if __name__ == "__main__":
  run(CATCHER)
