"""Device memory: XLA's estimate for a compiled function, the device's limit, an estimate of a whole plan from
its shapes, and refusing what cannot fit."""
import math
import os

import jax
import jax.extend.core as jex_core
import jax.numpy as jnp

from dlgrok import configs, loop

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


def available():
  """Bytes a run may plan to use: the accelerator's limit, or on a CPU the machine's available memory (Linux
  MemAvailable, else its physical memory); None where neither is known."""
  limit = device_memory()[1]
  if limit:
    return limit
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  try:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (ValueError, OSError, AttributeError):
    return None


def size(v):
  aval = getattr(v, "aval", None)
  shape, dtype = getattr(aval, "shape", None), getattr(aval, "dtype", None)
  if shape is None or dtype is None:
    return 0
  return math.prod(shape) * dtype.itemsize


def peak(jaxpr):
  """Bytes live at once when `jaxpr` runs one equation at a time without fusion (XLA's fusion only lowers it):
  its inputs throughout, each result from its equation to its last use, and a nested program (a loop body, a
  call) at its own peak above its inputs, its results included. Shapes only: nothing is compiled or allocated."""
  last = {}
  for i, e in enumerate(jaxpr.eqns):
    for v in e.invars:
      if isinstance(v, jex_core.Var):
        last[v] = i
  for v in jaxpr.outvars:
    if isinstance(v, jex_core.Var):
      last[v] = len(jaxpr.eqns)
  inputs = sum(size(v) for v in (*jaxpr.constvars, *jaxpr.invars))
  live = top = inputs
  held = set(jaxpr.constvars) | set(jaxpr.invars)
  for i, e in enumerate(jaxpr.eqns):
    inner = max((peak(getattr(j, "jaxpr", j)) - sum(size(v) for v in getattr(j, "jaxpr", j).invars)
                 for j in jex_core.jaxprs_in_params(e.params)), default=0)
    out = sum(size(v) for v in e.outvars)
    top = max(top, live + max(inner, out))  # a loop's or call's results are its body's
    live += out
    for v in {v for v in (*e.invars, *e.outvars) if isinstance(v, jex_core.Var) and last.get(v, -1) <= i}:
      if v not in held:
        live -= size(v)
  return top


def nbytes(tree):
  return sum(math.prod(a.shape) * a.dtype.itemsize for a in jax.tree_util.tree_leaves(tree))


def abstract(tree, sharding=None):
  return jax.tree_util.tree_map(
      lambda a: jax.ShapeDtypeStruct(a.shape, jax.dtypes.canonicalize_dtype(a.dtype), sharding=sharding), tree)


def estimate(plan):
  """(bytes per device at the peak, bytes held throughout, models per device) of training `plan`, from shapes
  before anything is built. Held: every cohort's state (parameters, optimiser state) and per-model arrays, and
  the data; the peak adds the largest transient of a cohort's train step or evaluation (its activations, for
  the models of one pass, unfused: an upper bound)."""
  d = plan.data
  # placed as loop.build places them, so that training reuses these traces
  places = [loop.Placement.of(plan.config, len(k.models)) for k in plan.cohorts]
  data = abstract({"x": d.x, "y": d.y, **({"stream": d.stream} if d.stream is not None else {})},
                  places[0].replicated)
  data_bytes = nbytes(data)
  held, transient, devices, models = 0, 0, 1, 0
  for k, place in zip(plan.cohorts, places):
    devices, models = place.devices, max(models, place.size + place.pad)
    fns = loop.cohort_fns(plan, k, place)
    arrays = abstract(jax.eval_shape(lambda: loop.model_arrays(plan, k, place)), place.sharding)
    with jax.default_matmul_precision(plan.config.matmul_precision):  # as training traces them: traced once
      state = jax.eval_shape(fns.init, arrays, data)
      step = jax.make_jaxpr(fns.chunk)(state, arrays, data, jnp.int32(0), jnp.int32(1)).jaxpr
      ev = jax.make_jaxpr(fns.evaluate)(state["params"], arrays, data).jaxpr
    state_bytes, params_bytes = nbytes((state, arrays)), nbytes(state["params"])
    held += state_bytes
    transient = max(transient, peak(step) - state_bytes - data_bytes,
                    peak(ev) - params_bytes - data_bytes)
  return int(data_bytes + (held + transient) / devices), int(data_bytes + held / devices), -(-models // devices)


def check(plan, limit=None):
  """Refuses (ConfigError) a plan whose estimate exceeds HEADROOM of the memory (`limit`, default available()),
  naming both numbers and how many models would fit. Where the accelerator reports its limit, only the bytes held
  throughout count here: train.check_memory then refuses on XLA's own estimate of the compiled programs, which
  knows their fusion."""
  accelerator = bool(device_memory()[1])
  limit = limit or available()
  if not limit:
    return
  peak_bytes, held, models = estimate(plan)
  est = held if accelerator else peak_bytes
  if est > HEADROOM * limit:
    where = "the device's memory" if accelerator else "the machine's available memory"
    fit = models_that_fit(models, est, limit)
    raise configs.ConfigError(
        f"{plan.n_models} models need about {gib(est)} per device (estimated from their shapes) but "
        f"{where} is {gib(limit)}; " + (f"about {fit} models fit per device: use fewer seeds or ranks, a smaller "
                                         "eval_chunk, or more devices" if fit else
                                         "not even one model fits: use a smaller model (width, layers)"))
