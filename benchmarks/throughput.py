"""Model-steps/s and memory of dlgrok's mod-97 train loop beside a bare JAX loop (and the PyTorch peer).

  python benchmarks/throughput.py --out benchmarks/results.md        # M = 1,5,25,100,400; highest, default
  python benchmarks/throughput.py --quick                            # M = 1,5, a few steps (CPU smoke run)
  python benchmarks/throughput.py --models 25 --peer ~/src/grokking  # with the danielmamay/grokking loop

dlgrok rows run the product's own cohort functions (epoch permutations, rank masks, recompose, AdamW warm-up; on
one CPU device the models of a step one after another, `model_batch`): one compiling chunk, then --chunks timed
chunks of --steps steps, each followed by an evaluation as at an evaluation point (the evaluation over all 9312
examples, stable ranks, metrics rows written to a temporary metrics.jsonl). "train only" is the chunks alone;
"eval s" one evaluation point of all M models, "eval ÷ train step" its cost per model in train steps (its FLOPs:
9312 / (3 x 512) = 6.1); "eval share" is evaluation's part of the wall time of the paper's 80 / 65 / 50 % runs
(1e4 / 1e5 / 1e6 steps, each with its default schedule) at the row's rates. The notes project the 80 % grid's
wall time on this machine. bare rows are the yardstick of docs/design.md §7: the same Transformer, vmapped AdamW
steps on random batches in a fori_loop, nothing else. On a GPU or TPU each row runs in a fresh process, so its
peak memory is its own; "XLA est." is the compiled chunk's or evaluation's argument + output + temporary bytes
(the larger), known before anything runs.
"""
import argparse
import datetime
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time

USER_ENV = dict(os.environ)  # the peer runs in it
# Multi-threaded OpenBLAS (the CPU SVD of the stable ranks) fights XLA's threads: 10x slower, stalls of 10-40 s.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from dlgrok import cohorts, configs, loop, memory, metrics  # noqa: E402
from dlgrok.memory import device_memory, gib, xla_bytes  # noqa: E402
from dlgrok.data import algorithmic  # noqa: E402
from dlgrok.models import transformer  # noqa: E402

PREALLOCATE = "XLA_PYTHON_CLIENT_PREALLOCATE"


EXPERIMENT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments", "mod97.py")


def mod97_config(spec, overrides=""):
  """The mod-97 config of one row: a single cohort of M models (`all` etc. at full rank, p100)."""
  group = "none" if spec["cohort"] in ("baseline", "bare") else spec["cohort"]
  tokens = [group] + ["p100"] * (group != "none") + [f"seeds={spec['models']}", "baseline=false", "f50",
                                                      f"matmul_precision={spec['precision']}", "progress_seconds=1e9"]
  return configs.load(EXPERIMENT, ",".join(tokens + configs.split_tokens(overrides)))


ENV_VARS = ("XLA_FLAGS", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION", "OPENBLAS_NUM_THREADS",
            "OMP_NUM_THREADS")


def environment():
  d = jax.devices()[0]
  v = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in ("jax", "jaxlib", "flax", "optax"))
  load = " (load avg %.1f)" % os.getloadavg()[0] if d.platform == "cpu" else ""
  env = "".join(f"; {k}={os.environ[k]}" for k in ENV_VARS if k in os.environ)
  return {"device": f"{jax.device_count()}× {d.device_kind} ({d.platform}), {os.cpu_count()} host CPUs{load}",
          "versions": v + env, "date": datetime.date.today().isoformat(), "platform": d.platform}


def refusal(spec, est):
  """Why a row would not fit the device (from the XLA estimate), with the number of models that would; or None."""
  why = memory.refusal(spec["models"], est, device_memory()[1])
  return why and f"refused: {why}"


def measure_dlgrok(spec, overrides):
  plan = cohorts.resolve(mod97_config(spec, overrides))
  cohort = plan.cohorts[-1]
  assert len(cohort.models) == spec["models"], cohort
  n, out = jnp.int32(spec["steps"]), {}
  rows = lambda step, state, wall: metrics.rows(cohort, step, loop.gather(fns.evaluate(state["params"], a, d)),
                                                wall)
  with tempfile.TemporaryDirectory() as tmp:
    t = time.perf_counter()
    _, d, arrays, all_fns = loop.build(plan)
    fns, a = all_fns[-1], arrays[-1]
    state = fns.init(a, d)
    out["xla_train"] = xla_bytes(fns.chunk, state, a, d, jnp.int32(0), n)
    out["xla_eval"] = xla_bytes(fns.evaluate, state["params"], a, d)
    why = refusal(spec, max(out["xla_train"] or 0, out["xla_eval"] or 0))
    if why:
      return dict(out, error=why)
    writer = metrics.Writer(tmp)
    state = jax.block_until_ready(fns.chunk(state, a, d, jnp.int32(0), n))
    writer.write(rows(spec["steps"], state, 0.0))
    out["first_s"] = time.perf_counter() - t
    step, train_s, eval_s = spec["steps"], 0.0, 0.0
    for _ in range(spec["chunks"]):
      t0 = time.perf_counter()
      state = jax.block_until_ready(fns.chunk(state, a, d, jnp.int32(step), n))
      t1 = time.perf_counter()
      step += spec["steps"]
      writer.write(rows(step, state, t1 - t))
      train_s, eval_s = train_s + t1 - t0, eval_s + time.perf_counter() - t1
    writer.close()
  out["traces"], out["eval_compiles"] = fns.chunk._cache_size(), fns.evaluate._cache_size()
  return dict(out, train_s=train_s, eval_s=eval_s)


def bare_loop(config, n_models):
  """docs/design.md §7's yardstick: (state, jitted chunk(state, n)) for vmapped AdamW on random batches; nothing
  else."""
  x, y = (jnp.asarray(a) for a in algorithmic.make(config.op, config.p))
  model = transformer.Transformer(vocab=algorithmic.vocab_size(config.p), width=config.width, heads=config.heads,
                                  layers=config.layers)
  opt = optax.adamw(config.lr, b1=config.b1, b2=config.b2, eps=config.eps, weight_decay=config.weight_decay)

  def init(key):
    params = model.init(key, x[:1])["params"]
    return params, opt.init(params), key

  def step(params, opt_state, key):
    key, sub = jax.random.split(key)
    idx = jax.random.randint(sub, (config.batch_size,), 0, len(y))

    def loss(p):
      logits = model.apply({"params": p}, x[idx])  # the logits at the last ('=') position
      return optax.softmax_cross_entropy_with_integer_labels(logits, y[idx]).mean()

    updates, opt_state = opt.update(jax.grad(loss)(params), opt_state, params)
    return optax.apply_updates(params, updates), opt_state, key

  def chunk(state, n):
    return jax.lax.fori_loop(0, n, lambda i, s: jax.vmap(step)(*s), state)

  state = jax.jit(jax.vmap(init))(jax.random.split(jax.random.PRNGKey(0), n_models))
  return state, jax.jit(chunk, donate_argnums=0)


def measure_bare(spec, overrides):
  state, chunk = bare_loop(mod97_config(spec, overrides), spec["models"])
  n, out = jnp.int32(spec["steps"]), {}
  t = time.perf_counter()
  out["xla_train"] = xla_bytes(chunk, state, n)
  why = refusal(spec, out["xla_train"])
  if why:
    return dict(out, error=why)
  state = jax.block_until_ready(chunk(state, n))
  out["first_s"] = time.perf_counter() - t
  t = time.perf_counter()
  for _ in range(spec["chunks"]):
    state = jax.block_until_ready(chunk(state, n))
  out["train_s"], out["eval_s"] = time.perf_counter() - t, 0.0
  out["traces"] = chunk._cache_size()
  return out


def measure(spec, overrides):
  """One row, in this process: rates, seconds and memory."""
  with jax.default_matmul_precision(spec["precision"]):
    out = (measure_bare if spec["cohort"] == "bare" else measure_dlgrok)(spec, overrides)
  out["peak"], out["limit"] = device_memory()
  if "error" in out:
    return dict(spec, **out, env=environment())
  steps = spec["models"] * spec["steps"] * spec["chunks"]
  out["rate"] = steps / (out["train_s"] + out["eval_s"])
  out["train_rate"] = steps / out["train_s"]
  return dict(spec, **out, env=environment())


def measure_isolated(spec, overrides):
  """One row in a fresh process (its own peak memory; an out-of-memory crash becomes a row)."""
  cmd = [sys.executable, os.path.abspath(__file__), "--row", json.dumps(spec), "--set", overrides]
  r = subprocess.run(cmd, capture_output=True, text=True)
  lines = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
  if r.returncode == 0 and lines:
    return json.loads(lines[-1][7:])
  err = r.stderr.strip().splitlines()
  oom = any("RESOURCE_EXHAUSTED" in l or "Out of memory" in l for l in err)
  return dict(spec, error="out of memory" if oom else f"exit {r.returncode}: {err[-1] if err else ''}"[:120])


def measure_peer(directory, steps, python, threads):
  """The danielmamay/grokking loop run from its own checkout: steps/s from two runs' wall times (N and 3N)."""
  row = {"cohort": "peer (torch)", "precision": "float32", "models": 1, "steps": steps}
  cli = next((p for p in (os.path.join(directory, "grokking", "cli.py"), os.path.join(directory, "cli.py"))
              if os.path.exists(p)), None)
  if cli is None:
    return dict(row, error=f"skipped: no grokking/cli.py under {directory}")
  check = subprocess.run([python, "-c", "import torch, wandb, tqdm, einops"], capture_output=True, text=True)
  if check.returncode:
    return dict(row, error=f"skipped: {python} cannot import torch, wandb, tqdm, einops "
                           f"({(check.stderr.strip().splitlines() or ['?'])[-1]})")
  env = dict(USER_ENV, WANDB_MODE="disabled", WANDB_SILENT="true")
  if threads:
    env["OMP_NUM_THREADS"] = str(threads)
  wall = []
  for n in (steps, 3 * steps):
    t = time.perf_counter()
    r = subprocess.run([python, os.path.basename(cli), "--num_steps", str(n)], cwd=os.path.dirname(cli), env=env,
                       capture_output=True, text=True)
    wall.append(time.perf_counter() - t)
    if r.returncode:
      return dict(row, error=f"peer exit {r.returncode}: {(r.stderr.strip().splitlines() or [''])[-1]}"[:120])
  rate = 2 * steps / (wall[1] - wall[0])
  return dict(row, rate=rate, train_rate=rate, first_s=wall[0], eval_s=0.0,
              note=f"every 100 steps it evaluates; {threads or 'default'} threads")


FRACS = ("f80", "f65", "f50")  # the paper's runs: 1e4, 1e5 and 1e6 steps
GRID = (31, 3)  # the 80 % grid: the baseline and 6 layer groups x 5 ranks; 3 seeds


def paper_schedules():
  """{fraction: (steps, evaluations)} of the paper's mod-97 runs with their default schedules."""
  plans = {f: cohorts.resolve(configs.load(EXPERIMENT, f"none,{f},seeds=1")) for f in FRACS}
  return {f: (p.steps, len(p.eval_steps)) for f, p in plans.items()}


def run_seconds(r, steps, evals):
  """(training, evaluation) seconds per model of a run of `steps` steps and `evals` evaluations at this row's
  train-only rate and evaluation seconds per point."""
  return steps / r["train_rate"], evals * r["eval_s"] / r["chunks"] / r["models"]


def eval_share(r, schedules):
  """Evaluation's share of each paper run's wall time at this row's rates."""
  if not (r.get("chunks") and r.get("eval_s")):
    return "-"
  shares = [run_seconds(r, *schedules[f]) for f in FRACS]
  return " / ".join(f"{100 * e / (t + e):.1f} %" for t, e in shares)


def grid_hours(rows, schedules):
  """Projected hours of the 80 % grid on this machine from the largest-M baseline and `all` rows, or None."""
  best = {}
  for r in rows:
    if "rate" in r and r["cohort"] in ("baseline", "all") and r["eval_s"]:
      if r["models"] >= best.get(r["cohort"], {}).get("models", 0):
        best[r["cohort"]] = r
  if len(best) < 2:
    return None
  configs_, seeds = GRID
  per_model = {k: sum(run_seconds(r, *schedules["f80"])) for k, r in best.items()}
  secs = seeds * per_model["baseline"] + (configs_ - 1) * seeds * per_model["all"]
  return secs / 3600, best


def table(rows, env, command):
  bare = {(r["precision"], r["models"]): r for r in rows if r["cohort"] == "bare" and "rate" in r}
  steps = next((r["steps"] for r in rows if r.get("chunks")), "?")
  schedules = paper_schedules()
  runs = ", ".join(f"{f}: {s:.0e} steps, {e} evals" for f, (s, e) in schedules.items())
  head = ["cohort", "precision", "M", f"model-steps/s (eval every {steps} steps)", "÷ bare", "train only", "÷ bare",
          "eval s", "eval ÷ train step", f"eval share {' / '.join(FRACS)}", "first call s", "peak memory",
          "per model", "XLA est. per model: train / eval", "M that fit"]
  out = [f"{env['device']}; {env['versions']}; {env['date']}", "", f"`{command}`", "",
         "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    m = r["models"]
    est = [r.get(k) for k in ("xla_train", "xla_eval")]
    big = max(e or 0 for e in est)
    xla = " / ".join(gib(e / m) if e else "-" for e in est) if big else "n/a"
    fit = str(int(0.95 * r["limit"] / (big / m))) if big and r.get("limit") else "n/a"
    if "rate" not in r:
      out.append(f"| {r['cohort']} | {r['precision']} | {m} | {r['error']} |" + " |" * 9 + f" {xla} | {fit} |")
      continue
    b = bare.get(("highest" if r["precision"] == "float32" else r["precision"], m))
    ratio = lambda k: f"{r[k] / b[k]:.2f}" if b and r is not b else ""
    ev, per_step = "-", "-"
    if r.get("chunks") and r["eval_s"]:  # one evaluation point, and its cost per model in train steps
      ev = f"{r['eval_s'] / r['chunks']:.2f}"
      per_step = f"{run_seconds(r, 0, 1)[1] * r['train_rate']:.1f}"
    peak = r.get("peak")
    out.append(f"| {r['cohort']} | {r['precision']} | {m} | {r['rate']:,.0f} | {ratio('rate')} | "
               f"{r['train_rate']:,.0f} | {ratio('train_rate')} | {ev} | {per_step} | {eval_share(r, schedules)} | "
               f"{r['first_s']:.1f} | "
               f"{gib(peak)} | {gib(peak / m) if peak else 'n/a'} | {xla} | {fit} |")
  notes = [f"eval share: evaluation's part of the paper's runs' wall time at the row's rates ({runs})"]
  grid = grid_hours(rows, schedules)
  if grid:
    hours, best = grid
    notes.append(f"projected 80 % grid on this machine ({GRID[0]} configurations x {GRID[1]} seeds x 1e4 steps, "
                 f"{schedules['f80'][1]} evaluations): {hours:.1f} h (baseline at M={best['baseline']['models']}, "
                 f"the decomposed models at `all` p100's rates at M={best['all']['models']})")
  notes += [f"{r['cohort']} M={r['models']} {r['precision']}: {r['note']}" for r in rows if r.get("note")]
  again = [f"{r['cohort']} M={r['models']}" for r in rows if r.get("traces", 1) > 1 or r.get("eval_compiles", 1) > 1]
  notes.append("recompiled while timing: " + (", ".join(again) if again else "none"))
  return "\n".join(out + [""] + [f"- {n}" for n in notes]) + "\n"


def parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--quick", action="store_true", help="M=1,5, highest only, 5 steps x 2 chunks")
  p.add_argument("--models", help="comma-separated model counts M (default 1,5,25,100,400)")
  p.add_argument("--precisions", help="matmul_precision values (default highest,default)")
  p.add_argument("--cohorts", default="baseline,all", help="dlgrok cohorts: baseline or a layer group at p100")
  p.add_argument("--steps", type=int, help="steps per timed chunk (default 500)")
  p.add_argument("--chunks", type=int, help="timed chunks per row (default 3)")
  p.add_argument("--set", default="", help="mod-97 config overrides, e.g. width=64,p=59 (as experiments/*.py)")
  p.add_argument("--peer", help="a danielmamay/grokking checkout to time (needs torch, wandb, tqdm, einops)")
  p.add_argument("--peer-python", default=sys.executable, help="interpreter for the peer")
  p.add_argument("--peer-threads", type=int, default=0, help="OMP_NUM_THREADS for the peer (0: its default)")
  p.add_argument("--isolate", choices=("auto", "always", "never"), default="auto",
                 help="one process per row (auto: where the device reports memory, i.e. GPU/TPU)")
  p.add_argument("--out", help="also write the table to this file")
  p.add_argument("--row", help=argparse.SUPPRESS)
  a = p.parse_args(argv)
  quick = a.quick
  a.models = [int(m) for m in (a.models or ("1,5" if quick else "1,5,25,100,400")).split(",")]
  a.precisions = (a.precisions or ("highest" if quick else "highest,default")).split(",")
  a.cohorts = [c for c in a.cohorts.split(",") if c]
  a.steps, a.chunks = a.steps or (5 if quick else 500), a.chunks or (2 if quick else 3)
  return a


def main(argv=None):
  """Measures every row, prints the table (and writes --out); returns the rows."""
  a = parse(argv)
  if a.row:
    print("RESULT " + json.dumps(measure(json.loads(a.row), a.set)), flush=True)
    return []
  before = os.environ.get(PREALLOCATE)
  if a.isolate != "never":
    os.environ[PREALLOCATE] = "false"  # this process only looks at the device; the rows get the caller's setting
  isolate = a.isolate == "always" or (a.isolate == "auto" and jax.devices()[0].memory_stats() is not None)
  if before is None:
    os.environ.pop(PREALLOCATE, None)
  else:
    os.environ[PREALLOCATE] = before
  specs = [{"cohort": c, "precision": p, "models": m, "steps": a.steps, "chunks": a.chunks}
           for p in a.precisions for m in a.models for c in ["bare"] + a.cohorts]
  command = "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
  rows = []

  def write():  # after every row, so a run cut short keeps what it measured
    env = next((r["env"] for r in rows if "env" in r), None) or environment()
    text = table(rows, env, command)
    if a.out:
      with open(a.out, "w") as f:
        f.write(text)
    return text

  for spec in specs:
    t = time.perf_counter()
    rows.append((measure_isolated if isolate else measure)(spec, a.set))
    r = rows[-1]
    done = f"{r['rate']:,.0f} model-steps/s" if "rate" in r else r["error"]
    print(f"[{time.perf_counter() - t:5.1f} s] {r['cohort']} {r['precision']} M={r['models']}: {done}",
          file=sys.stderr, flush=True)
    write()
  if a.peer:
    rows.append(measure_peer(a.peer, a.steps, a.peer_python, a.peer_threads))
  print(write())
  return rows


if __name__ == "__main__":
  main()
