"""Where the data loaders look for their files, and the error they raise."""
import os


class DataError(ValueError):
  """Missing, corrupt or inconsistent data files; the message names the files."""


def search_dirs(data_dir, name):
  """[data_dir] if given, else [$DLGROK_DATA/<name>] if DLGROK_DATA is set, else ../shared/data/<name> (relative to
  the current directory) and ~/data/<name>, as absolute paths."""
  if data_dir:
    return [os.path.abspath(os.path.expanduser(data_dir))]
  if os.environ.get("DLGROK_DATA"):
    return [os.path.abspath(os.path.join(os.path.expanduser(os.environ["DLGROK_DATA"]), name))]
  return [os.path.abspath(os.path.join("..", "shared", "data", name)), os.path.expanduser(f"~/data/{name}")]
