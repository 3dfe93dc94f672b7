"""Checks of what a user hands the command lines (paths, workdirs, the JAX backend) and the one-line error that
every entry point prints for them: `error: ...` on stderr, exit status 2, no traceback, nothing written."""
import argparse
import os
import sys

from dlgrok import configs, decompose, metrics, run_config, workdir as wd

NAME_MAX = 255  # bytes in one path component on Linux file systems


class InputError(ValueError):
  """A bad path, workdir, argument or environment; the message names it and what to do."""


class NothingYet(InputError):
  """Nothing to show yet (a run's first minute): said in one line, exit status 1."""


ERRORS = (InputError, configs.ConfigError, decompose.DecomposeError, metrics.MetricsError,
          run_config.ConfigFileError, wd.NoClient)


def cli(main):
  """Runs `main()` (an entry point's main), turning the errors of a bad input into one line and exit 2."""
  try:
    return main()
  except ERRORS as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1 if isinstance(e, NothingYet) else 2)


class Parser(argparse.ArgumentParser):
  """argparse with its errors as InputError: one line (no usage block), exit status 2 through cli()."""

  def error(self, message):
    raise InputError(f"{message}; see {self.prog} --help")


def short(text, n=60):
  return text if len(text) <= n else f"{text[:n - 3]}..."


def check_path(path, what):
  """Refuses a path with a component over NAME_MAX bytes or one that is a dangling symbolic link."""
  for part in path.split(os.sep):
    if len(os.fsencode(part)) > NAME_MAX:
      raise InputError(f"{what} {short(path)!r}: the name {short(part, 30)!r} is {len(os.fsencode(part))} bytes "
                       f"long, over the file system's limit of {NAME_MAX}; use a shorter name")
  if not wd.remote(path) and os.path.islink(path) and not os.path.exists(path):
    raise InputError(f"{what} {path!r} is a symbolic link to {os.readlink(path)!r}, which does not exist; "
                     "create its target or give another path")


def check_output(path, what, directory):
  """Refuses an output path that cannot be created: a file where a directory goes (or the reverse), a file on
  the way to it, or a parent that cannot be written. Creates nothing."""
  check_path(path, what)
  if wd.exists(path):
    if wd.isdir(path) != directory:
      kind = "a directory" if wd.isdir(path) else "a file"
      raise InputError(f"{what} {path!r} is {kind}, not {'a directory' if directory else 'a file'}; "
                       "give another path")
    if not wd.remote(path) and not os.access(path, os.W_OK):
      raise InputError(f"{what} {path!r} is not writable")
    return
  if wd.remote(path):  # a bucket's permissions show when it is written
    return
  probe = os.path.dirname(os.path.abspath(path))
  while not os.path.lexists(probe):
    probe = os.path.dirname(probe)
  if not os.path.isdir(probe):
    raise InputError(f"{what} {path!r}: {probe} is a file, not a directory; give another path")
  if not os.access(probe, os.W_OK | os.X_OK):
    raise InputError(f"{what} {path!r}: {probe} is not writable; give another path")


def check_run_dir(workdir):
  """Refuses a workdir that plot or inspect cannot read a run from: missing, a file, no config.json (InputError)
  or one that cannot be read (run_config.ConfigFileError)."""
  check_path(workdir, "workdir")
  if not wd.exists(workdir):
    raise InputError(f"workdir {workdir!r} does not exist; give a run directory that python -m dlgrok.main wrote")
  if not wd.isdir(workdir):
    raise InputError(f"workdir {workdir!r} is a file, not a run directory")
  p = wd.join(workdir, "config.json")
  if not wd.exists(p):
    raise InputError(f"{workdir} has no config.json: not a run directory, or its run has not started yet")
  run_config.read(workdir)


def check_workdir_contents(workdir):
  """Refuses a workdir whose config.json, metrics.jsonl or checkpoints are of the wrong kind (a directory for a
  file or the reverse), or whose config.json cannot be read; nothing is changed."""
  check_path(workdir, "workdir")
  if not wd.isdir(workdir):
    return
  for name, directory in (("config.json", False), ("metrics.jsonl", False), ("checkpoints", True)):
    p = wd.join(workdir, name)
    if wd.lexists(p) and wd.isdir(p) != directory:
      kind = "a directory" if wd.isdir(p) else ("a dangling link" if not wd.exists(p) else "a file")
      raise InputError(f"{p} is {kind}, not {'a directory' if directory else 'a file'}; move it away or give "
                       "another --workdir")
  if wd.exists(run_config.path(workdir)):
    run_config.read(workdir)


def check_backend():
  """Refuses a JAX_PLATFORMS this machine cannot start (gpu or tpu on a CPU machine, a misspelling) before any
  work; the message names the variable and what is there."""
  import jax
  try:
    jax.devices()
  except RuntimeError as e:
    asked = os.environ.get("JAX_PLATFORMS", "")
    why = (str(e).strip().splitlines() or [type(e).__name__])[0].split(" (set JAX_PLATFORMS")[0]
    raise InputError(f"JAX_PLATFORMS={asked!r}: JAX cannot start that backend here ({short(why, 100)}); unset it "
                     "or set JAX_PLATFORMS=cpu") from None
