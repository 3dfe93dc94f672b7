import os

# Tests run on the CPU; several virtual devices let multi-device code be tested too.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The suite's programs are tiny and each runs briefly: compiled at LLVM's lowest optimisation level they compile
# faster and run slower (tests/test_lab.py and test_train.py: 354 s -> 277 s on 2 cores). Their results are float32
# rounding away from the default level's (tests/regression.py: step-0 metrics in the 7th digit, and training
# carries that on), so a test compares programs built alike, or to a tolerance. The CLI runs tests start inherit
# it; an XLA_FLAGS that names the level keeps its own (`--xla_backend_optimization_level=2` tests at the default).
# XLA's older loop emitters compile these programs in half the time of its fusion emitters (the phase-diagram
# run of test_readme.py: 33 s -> 15 s of compiling), with results likewise float32 rounding away.
for flag, value in (("xla_backend_optimization_level", "0"), ("xla_cpu_use_fusion_emitters", "false")):
  if flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --{flag}={value}").strip()

import collections  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

# Many tests build the same tiny programs: a per-session persistent cache skips recompiling them.
CACHE = tempfile.mkdtemp(prefix="dlgrok-jax-cache-")
jax.config.update("jax_compilation_cache_dir", CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def pytest_unconfigure(config):
  shutil.rmtree(CACHE, ignore_errors=True)  # each test process's own cache: nothing is left in the temp folder


# The CLI runs a test starts share that cache: a resumed run loads what the run before it compiled.
CLI_ENV = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", JAX_COMPILATION_CACHE_DIR=CACHE,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")

from dlgrok import cohorts, configs, loop, metrics  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def experiment(name, arg=""):
  """get_config(arg) of experiments/<name>.py, as `--config=experiments/<name>.py:<arg>` builds it."""
  return configs.load(os.path.join(ROOT, "experiments", f"{name}.py"), arg)


def tiny_config(**fields):
  """A mod-p config small enough to train in seconds on a CPU core; group, ranks and weight_decays are given as
  the grammar's words and tokens ('ffn', 'r4,r16', '0,0.1'), the rest as config fields."""
  tokens = [t for t in fields.pop("group", "none").split(",") + fields.pop("ranks", "").split(",") if t]
  tokens += [f"wd{w}" for w in fields.pop("weight_decays", "").split(",") if w]
  c = experiment("mod97", ",".join(tokens + ["f80"]))
  c.update(dict(p=11, op="x+y", width=32, heads=2, steps=60.0, seeds=2, batch_size=32, eval_points=4,
                progress_seconds=1e9), **fields)
  return c


class Runner:
  """One cohort of a config through the product's own plan and cohort functions (a test's handle on them)."""

  def __init__(self, config, cohort_index=-1):
    self.plan = cohorts.resolve(config)
    _, self.data, arrays, fns = loop.build(self.plan)
    self.cohort = self.plan.cohorts[cohort_index]
    self.fns, self.a = fns[cohort_index], arrays[cohort_index]
    self.model = self.plan.task.model(self.plan.config, self.cohort.model_words, self.plan.data)
    self.ranks, self.x = self.a["ranks"], self.data["x"]

  def init(self):
    return self.fns.init(self.a, self.data)

  def chunk(self, state, step0, n):
    return self.fns.chunk(state, self.a, self.data, jax.numpy.int32(step0), jax.numpy.int32(n))

  def rows(self, step, params, wall=0.0):
    ev = loop.gather(self.fns.evaluate(params, self.a, self.data))
    return metrics.rows(self.cohort, step, ev, wall)


@pytest.fixture
def tiny():
  return tiny_config


def counting(event, name_of):
  made = collections.Counter()

  def listen(name, duration, fun_name="", **_):
    if name == event:
      made[fun_name] += 1

  jax.monitoring.register_event_duration_secs_listener(listen)
  yield lambda name: made[name_of(name)]
  jax.monitoring.unregister_event_duration_listener(listen)


@pytest.fixture
def compiles():
  """compiles(name): how many executables XLA made for the jitted function `name` since the test began, compiled
  or loaded from the persistent cache; a call that reuses one adds none."""
  yield from counting("/jax/core/compile/backend_compile_duration", lambda name: f"jit({name})")


@pytest.fixture
def traces():
  """traces(name): how many times jax traced the function `name` to a jaxpr since the test began."""
  yield from counting("/jax/core/compile/jaxpr_trace_duration", lambda name: name)
