"""Device memory: XLA's estimate for a compiled function, the device's limit, and refusing what cannot fit."""
import jax

HEADROOM = 0.95  # of the device's limit that a cohort may plan to use


def gib(b):
  """Bytes as text in GiB or MiB."""
  if b is None:
    return "n/a"
  return f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.1f} MiB"


def xla_bytes(fn, *args):
  """Argument + output - aliased + temporary bytes per device of jitted `fn(*args)`, from the compiled program
  (later calls with the same arguments reuse the compilation); None where the backend does not report it."""
  try:
    m = fn.lower(*args).compile().memory_analysis()
    return m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes
  except Exception:  # not every backend reports it
    return None


def device_memory():
  """(peak bytes in use, bytes limit) of the first device; None where the backend keeps no statistics (CPU)."""
  stats = jax.devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use"), stats.get("bytes_limit")


def models_that_fit(models, est, limit):
  """How many of `models` (per device) fit in HEADROOM * limit, when `est` bytes hold them all."""
  return int(HEADROOM * limit / (est / models))


def refusal(models, est, limit=None):
  """Why `models` models per device needing `est` bytes cannot run on the device, or None when they fit (or
  when either number is unknown)."""
  limit = limit or device_memory()[1]
  if not (est and limit) or est <= HEADROOM * limit:
    return None
  return (f"needs {gib(est)} per device (XLA's estimate) of {gib(limit)}; about "
          f"{models_that_fit(models, est, limit)} models fit per device")
