"""Every file dlgrok reads or writes in a workdir, local or on an object store (gs://bucket/...), through one path
type: etils.epath, which orbax uses too.

A local path keeps plain file semantics (fsync, atomic rename, append, hard links). On a bucket nothing is
renamed or appended: a whole write is one upload (readers see the old object or the new one), an append uploads
the new bytes as a part object and composes it onto the file (also atomic), and an exclusive create is an upload
with ifGenerationMatch=0. The store's client (gcsfs) is imported only for a remote path.
"""
import asyncio
import hashlib
import os
import shutil
import tempfile

from etils import epath

class NoClient(ValueError):
  """The package that speaks a remote path's protocol is not installed."""


# GCS composes at most 1024 components into one object; an appended file is written whole again before that.
MAX_PARTS = 512


def remote(p):
  return "://" in os.fspath(p)


def path(p):
  if remote(p):
    _fs(p)  # a missing client package as one line
  return epath.Path(p)


def join(p, *parts):
  if remote(p):
    return "/".join([os.fspath(p).rstrip("/"), *parts])
  return os.path.join(p, *parts)


def absolute(p):
  return os.fspath(p) if remote(p) else os.path.abspath(p)


def parent(p):
  return os.fspath(p).rstrip("/").rsplit("/", 1)[0] if remote(p) else os.path.dirname(p)


def basename(p):
  return os.fspath(p).rstrip("/").rsplit("/", 1)[-1] if remote(p) else os.path.basename(os.path.normpath(p))


def _fs(p):
  """The fsspec filesystem epath uses for remote `p`, without its listings cache; one clear line when its package
  is missing."""
  from etils.epath import backend  # pylint: disable=g-import-not-at-top
  try:
    fs = backend.fsspec_backend.fs(os.fspath(p))
    if getattr(fs, "dircache", None) is not None and fs.dircache.use_listings_cache:
      # other processes and tensorstore (orbax's arrays) write there too: a cached listing would go stale
      fs.dircache.use_listings_cache = False
      fs.dircache.clear()
    return fs
  except (ImportError, ValueError) as e:
    raise NoClient(f"{p}: reading or writing there needs its fsspec package (for gs://: pip install -e '.[gcs]', "
                   f"which installs gcsfs); {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def _key(p):
  return os.fspath(p).split("://", 1)[1]


def _part(p, shared=False):
  """The key of the part object appended to `p`: named after p's name, or `shared` by the folder's appended files
  (one a process; the next process overwrites what a killed one left). Readers skip the name, TensorBoard too."""
  name = "" if shared else "_" + hashlib.sha1(basename(p).encode()).hexdigest()[:12]
  return _key(parent(p)) + f"/_part{name}"


def exists(p):
  return os.path.exists(p) if not remote(p) else path(p).exists()


def lexists(p):
  return os.path.lexists(p) if not remote(p) else path(p).exists()


def isdir(p):
  return os.path.isdir(p) if not remote(p) else path(p).is_dir()


def isfile(p):
  return os.path.isfile(p) if not remote(p) else path(p).is_file()


def listdir(p):
  """Names in directory `p` (a remote prefix: the names below it)."""
  if not remote(p):
    return os.listdir(p)
  return [c.name for c in path(p).iterdir()]


def files(p):
  """Paths (with "/") of every file below directory `p`, relative to it."""
  if not remote(p):
    return [os.path.relpath(os.path.join(root, f), p) for root, _, names in os.walk(p) for f in names]
  prefix = _key(p).rstrip("/") + "/"
  return [k[len(prefix):] for k in _fs(p).find(prefix) if k.startswith(prefix)]


def makedirs(p):
  """Creates directory `p` and its parents (on a bucket there are no directories: nothing to do)."""
  if not remote(p):
    os.makedirs(p, exist_ok=True)


def open_file(p, mode="r"):
  return open(p, mode) if not remote(p) else path(p).open(mode)


def read_bytes(p):
  return path(p).read_bytes()


def read_text(p):
  return path(p).read_text()


def mtime(p):
  return os.path.getmtime(p) if not remote(p) else path(p).stat().mtime


def size(p):
  return os.path.getsize(p) if not remote(p) else path(p).stat().length


def write(p, data):
  """Writes `data` (str or bytes) to `p` whole: readers and a kill see the old file or the new one, never a part.
  Locally: a temporary file beside it, synced, then renamed; on a bucket: one upload."""
  data = data.encode() if isinstance(data, str) else data
  if remote(p):
    path(p).write_bytes(data)
    return
  with open(p + ".tmp", "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
  os.replace(p + ".tmp", p)


def remove(p):
  if not remote(p):
    os.remove(p)
  else:
    path(p).unlink()


def rmdir_if_empty(p):
  """Removes directory `p` if it is empty (a bucket has no empty directories)."""
  if not remote(p):
    try:
      os.rmdir(p)
    except OSError:
      pass


def move(src, dst):
  """Moves file or directory `src` to `dst` (on a bucket: every object copied, then the originals deleted)."""
  if not remote(src):
    shutil.move(src, dst)
    return
  fs = _fs(src)
  fs.copy(_key(src), _key(dst), recursive=True)  # all copied before anything is deleted
  fs.rm(_key(src), recursive=True)


def create(p, data):
  """Writes `data` to `p` only if `p` does not exist, atomically; False if it exists. Locally: written whole under a
  private name, then hard-linked into place (atomic on NFS too); on a bucket: an upload with ifGenerationMatch=0."""
  data = data.encode() if isinstance(data, str) else data
  if remote(p):
    try:
      _fs(p).pipe_file(_key(p), data, mode="create")
      return True
    except FileExistsError:
      return False
  fd, mine = tempfile.mkstemp(prefix=os.path.basename(p) + ".", dir=os.path.dirname(p) or ".")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    try:
      os.link(mine, p)
      return True
    except FileExistsError:
      return False
  finally:
    os.remove(mine)


class Appender:
  """Appends to file `p`, each write whole once it returns (`sync`: fsynced locally). Locally one open file; on a
  bucket each write is a part object composed onto `p` (atomic), and `p` is written whole again every MAX_PARTS
  writes, within GCS's limit on components."""

  def __init__(self, p, sync=True):
    self.path, self.sync, self.parts, self.dirty = p, sync, 0, False
    if remote(p):
      self._file, self._exists = None, exists(p)
    else:
      self._file = open(p, "ab")

  def write(self, pieces, between=None):
    """Appends the strings `pieces`; `between()` is called after the first one is written (a test's fault)."""
    pieces = [x.encode() if isinstance(x, str) else x for x in pieces]
    if self._file is not None:
      for i, piece in enumerate(pieces):
        self._file.write(piece)
        if i == 0 and between:
          between()
      self._file.flush()
      if self.sync:
        os.fsync(self._file.fileno())
      return
    if between:
      between()
    data = b"".join(pieces)
    fs, key = _fs(self.path), _key(self.path)
    if not self._exists:
      fs.pipe_file(key, data)
      self._exists = True
      return
    fs.pipe_file(_part(self.path), data)
    fs.merge(key, [key, _part(self.path)])
    self.parts, self.dirty = self.parts + 1, True
    if self.parts >= MAX_PARTS:
      fs.pipe_file(key, fs.cat_file(key))
      self.parts = 0

  def close(self):
    if self._file is not None:
      self._file.close()
    elif self.dirty:
      _fs(self.path).rm_file(_part(self.path))
      self.dirty = False


class Appenders:
  """Appends to many new files at once, at most one a folder (TensorBoard's event files; none exists before its
  first write). Locally each is opened, written and closed; on a bucket the parts are uploaded together, then
  composed together."""

  def __init__(self):
    self.parts = {}  # path -> parts composed onto it since it was last written whole
    self.dirty = set()  # paths with a part object left

  def write(self, data):
    """Appends data[path] (bytes) to each path."""
    if not data:
      return
    first = next(iter(data))
    if not remote(first):
      for p, d in data.items():
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "ab") as f:
          f.write(d)
      return
    fs = _fs(first)
    old = [p for p in data if p in self.parts]
    fs.pipe({(_part(p, True) if p in self.parts else _key(p)): d for p, d in data.items()})
    self._sync(fs, [fs._merge(_key(p), [_key(p), _part(p, True)]) for p in old])  # pylint: disable=protected-access
    for p in data:
      self.parts[p] = self.parts[p] + 1 if p in self.parts else 0
    self.dirty.update(old)
    full = [p for p in old if self.parts[p] >= MAX_PARTS]
    if full:
      fs.pipe(fs.cat([_key(p) for p in full]))
      self.parts.update(dict.fromkeys(full, 0))

  @staticmethod
  def _sync(fs, coroutines):
    from fsspec import asyn  # pylint: disable=g-import-not-at-top
    if coroutines:
      async def together():
        await asyncio.gather(*coroutines)
      asyn.sync(fs.loop, together)

  def close(self):
    if self.dirty:
      _fs(next(iter(self.dirty))).rm(sorted({_part(p, True) for p in self.dirty}))
      self.dirty.clear()
