import os

# Tests run on the CPU; several virtual devices let multi-device code be tested too.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import tempfile  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

# Many tests build the same tiny programs: a per-session persistent cache skips recompiling them.
jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="dlgrok-jax-cache-"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)

from dlgrok import tasks  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**fields):
  """A mod-p config small enough to train in seconds on a CPU core."""
  c = tasks.mod_p_config(p=11, op="x+y", width=32, heads=2, frac=0.8, steps=60.0, seeds=2, batch_size=32,
                         eval_points=4, progress_seconds=1e9)
  c.update(fields)
  return c


@pytest.fixture
def tiny():
  return tiny_config
