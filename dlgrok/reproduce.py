"""The paper's main results within a time budget on one accelerator: python -m dlgrok.reproduce OUTDIR
[--budget MINUTES] [--only ITEM,...] [--list] [--tiny] [--peer DIR] [--workdirs DIR].

Runs a fixed, prioritised list of items (--list shows it). A short warm-up measures model-steps/s on the device
at hand; each item's cost is estimated from it, and an item that would not fit the budget left is skipped and
said so (the last two, the 50 % runs and App. E, train for whatever time is left and resume on the next call;
App. E needs the MNIST files, found through DLGROK_DATA or data_dir as everywhere, else it is skipped). OUTDIR gets
results.md (device, versions, precision, date; per item: commands, wall time, numbers beside the paper's),
reproduce.log and results.tar.gz (per item: metrics.jsonl.gz, config.json, figures, tables). --tiny runs every
item at toy size (a CPU does it in minutes). Training workdirs (checkpoints) go to --workdirs (runs/reproduce).
"""
import dataclasses
import datetime
import gzip
import importlib.metadata
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

from dlgrok import configs, signals, workdir as wd

TINY = "p=11,op=x+y,width=32,heads=2,batch_size=32,eval_points=6"
PAPER_GROUPS = ("tok", "pos", "attn", "ffn", "out", "all")
REMEDIES = "all,p100,usv,uv,diag,grokfast_ema,stablemax+orthograd,decay"
MAX_FILE = 16 * 2**20


@dataclasses.dataclass
class Item:
  name: str
  title: str
  paper: str  # what the paper (or docs/design.md §7's yardsticks) reports, to read ours beside
  runs: list  # [(run name, experiment file, argument)], or [] for the throughput benchmark
  resumable: bool = False  # trains for the time left and continues on the next call
  fit_steps: bool = False  # its step count is cut to fit the budget left


def items(tiny):
  """The programme, in priority order; `tiny`: the same items at toy size."""
  seeds = "seeds=1" if tiny else "seeds=5"
  size = f",{TINY},steps=60" if tiny else ""
  grid = lambda frac, groups: ([(f"none_{frac}", "mod97.py", f"none,{frac},{seeds}{size}")]
                               + [(f"{g}_{frac}", "mod97.py", f"{g},{frac},{seeds},baseline=false{size}")
                                  for g in groups])
  phase_fracs = "f30,f40,f50,f60,f70,f80,f90"
  appe = lambda g: (f"{g},{seeds}" + (",baseline=false" + ",p50" * tiny) * (g != "none")
                    + (",n_train=512,width=16,batch_size=64,epochs=2,eval_points=2" if tiny
                       else ",eval_points=25,eval_spacing=linear"))
  return [
      Item("throughput", "Throughput: dlgrok vs the bare loop (and the PyTorch peer)",
           "docs/design.md §7, on an H100: bare loop 5.9k (M=25) / 6.8k (M=100) model-steps/s at highest precision; "
           "all layers factorised −13 %; PyTorch reference loop 54–118 steps/s", []),
      Item("grid80", "mod-97 main grid at 80 % (Figures 3–8 c)",
           "decomposing any group at any rank generalises no later than the baseline; at 80 % the baseline also "
           "groks within 1e4 steps (figures, no table)", grid("f80", PAPER_GROUPS)),
      Item("remedies", "Remedies compared at 80 % (the grokking lab)",
           "grokfast: up to ×50 fewer steps on its own setup; Prieto et al.: grokking without regularisation with "
           "StableMax + ⊥Grad; the paper: decomposed learning shortens grokking",
           [("remedies_f80", "remedies.py", f"{REMEDIES},{seeds}{size}")]),
      Item("precision", "Precision: highest vs default matmuls (80 % baseline and all layers at 100 %)",
           "not in the paper; the paper's PyTorch code trains in true float32 (highest)",
           [(f"precision_{p}", "mod97.py", f"all,p100,f80,{seeds},matmul_precision={p}{size}")
            for p in ("highest", "default")]),
      Item("phase", "Rank × training-fraction phase diagram (all layers)",
           "the paper's thesis: more data, fewer ranks needed (no single figure)",
           [("phase_all", "mod97.py", f"all,{phase_fracs},{'seeds=1' if tiny else 'seeds=3'}"
             + (f",{TINY}" if tiny else "") + f",steps={60 if tiny else 20000}")], fit_steps=True),
      Item("grid65", "mod-97 grid at 65 % (baseline, tok, attn, all; 1e5 steps)",
           "Figures 3, 5, 8 b: decomposed models grok earlier than the baseline", grid("f65", ("tok", "attn", "all"))),
      Item("f50", "50 %: the baseline vs all layers at 100 % (App. A.2)",
           "App. A.2: the 1 %-gap step of all layers at 100 % is 61.67× earlier than the baseline's",
           [("f50_all", "mod97.py", f"all,p100,f50,{seeds}" + (f",{TINY},steps=60" if tiny else ""))],
           resumable=True),
      Item("appe", "App. E, Figure 24: weight decay × rank on MNIST (each layer, then all; inputs in [−1, 1])",
           "best test accuracy of the baseline 93.80 / 93.78 / 93.67 / 92.66 / 86.02 / 11.47 % at weight decay 0 / "
           "1e-4 / 1e-3 / 1e-2 / 0.1 / 1; all layers at 40 % without weight decay 94.85 %, 67.1 % / 59.37 % of the "
           "baseline's parameters trained / at inference; MLP 1 decomposable to 80 % without weight decay",
           [(f"appe_{g}", "mnist_wd.py", appe(g)) for g in ("none", "all", "l1", "l2", "l3")],
           resumable=True),
  ]


def log(out, text):
  print(text, flush=True)
  f = wd.Appender(wd.join(out, "reproduce.log"), sync=False)
  f.write([text + "\n"])
  f.close()


def plan_of(experiment, arg):
  from dlgrok import cohorts
  return cohorts.resolve(configs.load(os.path.join(configs.EXPERIMENTS, experiment), arg))


def warm_up(tiny):
  """(model-steps/s of a mod-97 cohort on this device, seconds to compile and run its first chunk, seconds per
  model per evaluation): the rates every estimate scales."""
  import jax
  import jax.numpy as jnp
  from dlgrok import loop
  m = 2 if tiny else 25
  plan = plan_of("mod97.py", f"all,p100,f80,seeds={m},baseline=false" + (f",{TINY}" if tiny else ""))
  _, data, arrays, fns = loop.build(plan)
  f, a = fns[0], arrays[0]
  with jax.default_matmul_precision(plan.config.matmul_precision):
    t = time.perf_counter()
    state = jax.block_until_ready(f.chunk(f.init(a, data), a, data, jnp.int32(0), jnp.int32(10)))
    jax.block_until_ready(f.evaluate(state["params"], a, data))
    first = time.perf_counter() - t
    n = 20 if tiny else 300
    t = time.perf_counter()
    state = jax.block_until_ready(f.chunk(state, a, data, jnp.int32(10), jnp.int32(n)))
    rate = m * n / (time.perf_counter() - t)
    t = time.perf_counter()
    jax.block_until_ready(f.evaluate(state["params"], a, data))
    per_eval = (time.perf_counter() - t) / m
  return rate, first, per_eval


def cost(item, speed):
  """(fixed, per-step) seconds of an item at the warm-up's speed: compilations and evaluations, and training per
  step of its runs (the throughput rows: a fixed guess, about 8 minutes on a GPU)."""
  rate, first, per_eval = speed
  if not item.runs:
    return (60.0 * 8 if rate > 1000 else 60.0), 0.0
  fixed = per_step = 0.0
  for _, experiment, arg in item.runs:
    plan = plan_of(experiment, arg)
    for k in plan.cohorts:
      fixed += first + len(k.models) * len(plan.eval_steps) * per_eval
      per_step += len(k.models) / rate
  return fixed, per_step


def fitted(item, speed, left):
  """The item with its (single) run's steps cut so that it fits `left` seconds; None if even 1000 steps do not."""
  fixed, per_step = cost(item, speed)
  name, experiment, arg = item.runs[0]
  steps = int(plan_of(experiment, arg).steps)
  fit = min(steps, int((0.9 * left - fixed) / max(per_step, 1e-12)) // 1000 * 1000)
  if fit < min(steps, 1000):
    return None
  tokens = [t for t in arg.split(",") if not t.startswith("steps=")] + [f"steps={fit}"]
  return dataclasses.replace(item, runs=[(name, experiment, ",".join(tokens))])


def run_item(item, out, workdirs, deadline, stop=signals.never):
  """Trains the item's runs (each resuming from its workdir), stopping at `deadline`; returns its report. A reason
  from `stop()` (a signal, where the command line catches them) ends the programme: Interrupted propagates."""
  from dlgrok import train
  report = {"runs": [], "stopped": None}
  for name, experiment, arg in item.runs:
    workdir = wd.join(workdirs, name)
    cmd = f"python -m dlgrok.main --config=experiments/{experiment}:{arg} --workdir={workdir}"
    left = deadline - time.time()
    if left <= 0:
      report["stopped"] = "the budget ran out before this run"
      break
    t = time.time()
    budget = lambda: stop() or ("budget" if time.time() >= deadline else None)  # noqa: E731
    try:
      train.run(configs.load(os.path.join(configs.EXPERIMENTS, experiment), arg), workdir, stop=budget)
      status = "done"
    except train.Interrupted as e:
      if e.signal_name != "budget":
        log(out, f"  {name}: interrupted by {e.signal_name} at step {e.step}")
        raise
      status = f"stopped by the budget at step {e.step} (rerun to continue)"
      report["stopped"] = status
    report["runs"].append({"name": name, "command": cmd, "wall": time.time() - t, "status": status,
                           "workdir": workdir})
    log(out, f"  {name}: {status}, {time.time() - t:.0f} s")
    if report["stopped"]:
      break
  return report


def summarise(item, report, out):
  """Writes the item's folder (metrics, config, figures, tables) and returns its results.md section."""
  import matplotlib.pyplot as plt
  from dlgrok import lab_plots, markdown, plot, run_config, summary
  folder = wd.join(out, "items", item.name)
  wd.makedirs(folder)
  workdirs = [r["workdir"] for r in report["runs"] if wd.exists(wd.join(r["workdir"], "metrics.jsonl"))]
  for w in workdirs:
    dest = wd.join(folder, wd.basename(w))
    wd.makedirs(dest)
    wd.write(wd.join(dest, "config.json"), wd.read_bytes(wd.join(w, "config.json")))
    buffer = io.BytesIO()
    with gzip.GzipFile("metrics.jsonl.gz", "wb", fileobj=buffer) as g:
      g.write(wd.read_bytes(wd.join(w, "metrics.jsonl")))
    wd.write(wd.join(dest, "metrics.jsonl.gz"), buffer.getvalue())
  lines = [f"## {item.title}", "", f"Paper: {item.paper}", ""]
  lines += [f"- `{r['command']}` — {r['status']}, {r['wall']:.0f} s" for r in report["runs"]]
  if report["stopped"] and not report["runs"]:
    lines.append(f"- stopped: {report['stopped']} (rerun with `--only {item.name}` to continue)")
  if not workdirs:
    return "\n".join(lines + [""])
  rows = plot.load(workdirs)
  lab = item.name in ("remedies", "phase")
  figs = lab_plots.figures(rows, item.name == "remedies", item.name == "phase") if lab else plot.figures(rows, [])
  for stem, fig in figs:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    wd.write(wd.join(folder, f"{stem}.png"), buffer.getvalue())
    plt.close(fig)
  if item.name == "remedies":
    table = lab_plots.compare_table(rows)
  elif item.name == "precision":  # one table per precision: the arms are the same models
    table = "\n\n".join(f"matmul precision `{run_config.read(w)['matmul_precision']}`:\n\n"
                         + markdown.table(summary.summarise(plot.load([w]))) for w in workdirs)
  else:
    table = plot.tables(rows)
  wd.write(wd.join(folder, "table.md"), table + "\n")
  return "\n".join(lines + ["", table, ""])


def throughput(out, tiny, peer):
  """benchmarks/throughput.py's rows (and the peer's) into the item folder; returns the results.md section."""
  folder = wd.join(out, "items", "throughput")
  wd.makedirs(folder)
  args = (["--quick", "--set", "p=11,op=x+y,width=16,heads=2,layers=1,batch_size=16", "--models", "1,2", "--steps",
           "2", "--chunks", "1"] if tiny else ["--models", "1,25,100,400", "--precisions", "highest,default"])
  t = time.time()
  with tempfile.TemporaryDirectory() as tmp:  # the benchmark writes a local file; copied into the folder
    md = os.path.join(tmp, "throughput.md")
    done = subprocess.run([sys.executable, os.path.join(configs.shipped("benchmarks"), "throughput.py"), *args, "--out", md,
                           *(["--peer", peer] if peer else [])], capture_output=True, text=True)
    text = open(md).read() if os.path.exists(md) else ""
  if text:
    wd.write(wd.join(folder, "throughput.md"), text)
  args += ["--out", wd.join(folder, "throughput.md")] + (["--peer", peer] if peer else [])
  status = "done" if done.returncode == 0 else f"failed: {done.stderr.strip().splitlines()[-1:]}"
  return (f"## {items(tiny)[0].title}\n\nPaper: {items(tiny)[0].paper}\n\n- `python benchmarks/throughput.py "
          f"{' '.join(args)}` — {status}, {time.time() - t:.0f} s\n\n{text}\n")


def environment(speed, budget):
  import jax
  d = jax.devices()[0]
  versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in ("jax", "jaxlib", "flax", "optax"))
  rate, first, per_eval = speed
  return (f"# dlgrok reproduce: results\n\n{jax.device_count()}× {d.device_kind} ({d.platform}); {versions}; "
          f"{datetime.datetime.now().isoformat(timespec='minutes')}; matmul precision: highest unless an item says "
          f"otherwise; budget {budget:g} min. Warm-up: {rate:,.0f} model-steps/s (mod-97 all-layers cohort), "
          f"{first:.1f} s to compile a cohort, {per_eval * 1e3:.1f} ms per model per evaluation.\n\n")


def pack(out):
  """items/ into results.tar.gz (removed afterwards): OUTDIR keeps results.md, reproduce.log and the archive."""
  folder = wd.join(out, "items")
  if not wd.isdir(folder):
    return
  archive = wd.join(out, "results.tar.gz")
  if wd.remote(out):  # the archive made in memory from the objects, then uploaded
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
      for name in sorted(wd.files(folder)):
        data = wd.read_bytes(wd.join(folder, name))
        info = tarfile.TarInfo(f"items/{name}")
        info.size, info.mtime = len(data), int(time.time())
        tar.addfile(info, io.BytesIO(data))
    wd.write(archive, buffer.getvalue())
    wd.path(folder).rmtree()
  else:
    with tarfile.open(archive, "w:gz") as tar:
      tar.add(folder, arcname="items")
    shutil.rmtree(folder)
  size = wd.size(archive)
  if size > MAX_FILE:
    log(out, f"warning: results.tar.gz is {size / 2**20:.1f} MiB, over {MAX_FILE // 2**20} MiB")


def main(argv=None, stop=signals.never):
  """The programme `argv` asks for; `stop()` is the command line's signal (None until one arrives): it saves the
  run in progress and exits 143 / 130 / 129 (rerun the same command to continue)."""
  from dlgrok import inputs
  ap = inputs.Parser(prog="python -m dlgrok.reproduce", description=__doc__.splitlines()[0])
  ap.add_argument("outdir", nargs="?", help="output folder (not needed with --list)")
  ap.add_argument("--budget", type=float, default=60.0, help="minutes for everything (default 60)")
  ap.add_argument("--only", help="comma-separated items (see --list)")
  ap.add_argument("--list", action="store_true", help="list the items and exit")
  ap.add_argument("--tiny", action="store_true", help="every item at toy size (minutes on a CPU)")
  ap.add_argument("--peer", help="a danielmamay/grokking checkout for the throughput item")
  ap.add_argument("--workdirs", default=os.path.join("runs", "reproduce"), help="training workdirs (checkpoints)")
  a = ap.parse_args(argv)
  programme = items(a.tiny)
  names = [i.name for i in programme]
  only = names if not a.only else a.only.split(",")
  unknown = [n for n in only if n not in names]
  if unknown:
    ap.error(f"unknown item {unknown[0]!r}; items: {', '.join(names)}")
  if a.list:
    for i in programme:
      print(f"{i.name:11s} {i.title}" + "".join(f"\n            {e}:{arg}" for _, e, arg in i.runs))
    return
  if a.outdir is None:
    ap.error("OUTDIR is required (the folder for results.md, results.tar.gz and reproduce.log)")
  check(a)
  from dlgrok import train
  try:
    run_programme(a, programme, only, stop)
  except train.Interrupted as e:
    log(a.outdir, f"interrupted by {e.signal_name}; rerun the same command to continue (each run resumes)")
    sys.exit(signals.EXIT_CODES.get(e.signal_name, 1))


def check(a):
  """Refuses bad arguments before the warm-up: the budget, the output and workdir paths, --peer, the backend."""
  from dlgrok import inputs
  if not 0 < a.budget < float("inf"):
    raise inputs.InputError(f"--budget {a.budget:g}: give the minutes for everything, a number > 0")
  inputs.check_output(a.outdir, "OUTDIR", directory=True)
  inputs.check_output(a.workdirs, "--workdirs", directory=True)
  if a.peer and not os.path.isdir(a.peer):
    raise inputs.InputError(f"--peer {a.peer!r} is not a directory; give a danielmamay/grokking checkout")
  inputs.check_backend()


def run_programme(a, programme, only, stop=signals.never):
  start, deadline = time.time(), time.time() + 60 * a.budget
  wd.makedirs(a.outdir)
  speed = warm_up(a.tiny)
  log(a.outdir, f"warm-up: {speed[0]:,.0f} model-steps/s, {speed[1]:.1f} s first chunk, "
                f"{speed[2] * 1e3:.1f} ms per model-evaluation")
  sections = []
  for item in (i for i in programme if i.name in only):
    left = deadline - time.time()
    if item.fit_steps:
      item = fitted(item, speed, left) or item
    try:
      fixed, per_step = cost(item, speed)
    except ValueError as e:  # a config or data error (MNIST files not found, say): the item cannot run here
      sections.append(f"## {item.title}\n\nskipped: {e}\n")
      log(a.outdir, f"{item.name}: skipped ({e})")
      continue
    est = fixed + per_step * max((int(plan_of(*r[1:]).steps) for r in item.runs), default=0)
    if est > left and not item.resumable:
      sections.append(f"## {item.title}\n\nskipped: estimated {est / 60:.1f} min, {left / 60:.1f} min of the budget "
                      f"left (run `python -m dlgrok.reproduce OUTDIR --only {item.name}` with more)\n")
      log(a.outdir, f"{item.name}: skipped (needs ~{est / 60:.1f} min, {left / 60:.1f} left)")
      continue
    log(a.outdir, f"{item.name}: ~{est / 60:.1f} min estimated, {left / 60:.1f} left")
    if item.name == "throughput":
      sections.append(throughput(a.outdir, a.tiny, a.peer))
    else:
      sections.append(summarise(item, run_item(item, a.outdir, a.workdirs, deadline, stop), a.outdir))
  wd.write(wd.join(a.outdir, "results.md"), environment(speed, a.budget) + "\n".join(sections))
  pack(a.outdir)
  log(a.outdir, f"done in {time.time() - start:.0f} s: {a.outdir}/results.md, results.tar.gz, reproduce.log")


if __name__ == "__main__":
  from dlgrok import inputs
  CATCHER = signals.Catcher().install()  # the command line's signals, and only there
  inputs.cli(lambda: main(stop=CATCHER.received))
