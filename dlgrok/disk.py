"""A full disk (ENOSPC) as one error naming the path being written, wherever in a write it happens (orbax and
tensorstore report it from their own threads, sometimes only in the message)."""
import contextlib
import errno
import logging


class Full(Exception):
  """No space left while writing `path`; what was saved before is whole, and a rerun resumes from it."""

  def __init__(self, path):
    super().__init__(f"disk full writing {path}: free space and rerun to resume")
    self.path = path


def is_full(error):
  """Whether `error`, or an error it was raised from, is a full disk."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, Full) or (isinstance(error, OSError) and error.errno == errno.ENOSPC):
      return True
    if "No space left on device" in str(error):
      return True
    error = error.__cause__ or error.__context__
  return False


@contextlib.contextmanager
def writing(path):
  """Raises Full(path) for a full disk inside the block; other errors pass unchanged."""
  try:
    yield
  except Full:
    raise
  except Exception as e:  # noqa: BLE001 - only a full disk is translated
    if is_full(e):
      raise Full(path) from e
    raise


class Unlogged(logging.Filter):
  """Drops log records of a full disk: orbax's save thread logs the error, with a traceback, before handing it to
  the run, which reports it in one line."""

  def filter(self, record):
    return not (record.exc_info and is_full(record.exc_info[1]))
