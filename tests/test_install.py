"""A plain (non-editable) `pip install .` stands alone: run from a directory outside the checkout, the installed
package finds the experiment files and the reproduce programme's benchmark, trains a run from an experiment file
given by path, and inspects and plots it."""
import os
import subprocess
import sys
import sysconfig

import pytest

from conftest import CLI_ENV, ROOT

TINY = "tok,r2,p=11,op=x+y,width=32,heads=2,steps=5,seeds=1,batch_size=32,eval_points=2"


@pytest.mark.slow  # builds a wheel into a fresh virtual environment, then trains a tiny run
def test_a_plain_install_works_from_any_directory(tmp_path):
  wheels, venv, elsewhere = tmp_path / "wheels", tmp_path / "venv", tmp_path / "elsewhere"
  subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), ROOT], check=True)
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
  python = str(venv / "bin" / "python")
  subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index",
                  *map(str, wheels.iterdir())], check=True)
  site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        capture_output=True, text=True, check=True).stdout.strip()
  with open(os.path.join(site, "dependencies.pth"), "w") as f:  # jax & co. from this environment, not dlgrok
    f.write(sysconfig.get_paths()["purelib"] + "\n")
  elsewhere.mkdir()
  env = {k: v for k, v in CLI_ENV.items() if k != "PYTHONPATH"}

  def run(*args):
    done = subprocess.run([python, *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (args, done.stderr[-3000:])
    return done.stdout

  assert run("-c", "import dlgrok; print(dlgrok.__file__)").startswith(site)
  assert "grid80" in run("-m", "dlgrok.reproduce", "--list")
  found = run("-c", "import os; from dlgrok import configs, reproduce; "
              "print(reproduce.plan_of('remedies.py', 'stablemax+orthograd,seeds=1').n_models, "
              "os.path.isfile(os.path.join(configs.shipped('benchmarks'), 'throughput.py')))")
  assert found.split() == ["2", "True"]
  assert "(dry run: nothing written)" in run("-m", "dlgrok.main", f"--config=experiments/mod97.py:{TINY}",
                                             "--dry_run")
  run("-m", "dlgrok.main", f"--config={ROOT}/experiments/mod97.py:{TINY}", "--workdir=run")
  assert "model   1  cohort tok        rank r2" in run("-m", "dlgrok.inspect", "run")
  run("-m", "dlgrok.plot", "run", "--out", "plots")
  assert any(p.endswith(".png") for p in os.listdir(elsewhere / "plots"))
