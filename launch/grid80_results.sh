#!/usr/bin/env bash
# The 80 % grid's results folder from its workdirs (launch/grid80_cpu.sh): each finished run's config.json and
# gzipped metrics, runs.md (steps reached, wall time with any pauses, model-steps/s; a run still training is listed
# there, not copied), the figures, the tables (all cells, one per layer group, one line per model) and Figure 9.
#   bash launch/grid80_results.sh [ROOT] [OUT]   # ROOT as for grid80_cpu.sh (default runs); OUT results/mod97_f80
set -euo pipefail
root=${1:-runs}
out=${2:-results/mod97_f80}
finished=$(python - "$root" "$out" <<'EOF'
import gzip, os, shutil, sys
from dlgrok import metrics, run_config
root, out = sys.argv[1:]
lines = ["| run | models | steps reached / planned | wall (h) | model-steps/s |", "|---|---|---|---|---|"]
for g in ("none", "attn", "ffn", "all", "out", "tok", "pos"):
  src, dst = os.path.join(root, "grid80", f"{g}_f80"), os.path.join(out, f"{g}_f80")
  if not os.path.exists(os.path.join(src, "metrics.jsonl")):
    continue
  rows, steps = metrics.read(src), int(run_config.read(src)["steps"])
  last, models, wall = max(r["step"] for r in rows), len({r["model"] for r in rows}), max(r["wall"] for r in rows)
  done = "" if last == steps else " (training: not copied)"
  lines.append(f"| {g}_f80 | {models} | {last} / {steps}{done} | {wall / 3600:.2f} | {models * last / wall:.1f} |")
  if not done:
    os.makedirs(dst, exist_ok=True)
    shutil.copy(os.path.join(src, "config.json"), dst)
    with open(os.path.join(src, "metrics.jsonl"), "rb") as f:
      open(os.path.join(dst, "metrics.jsonl.gz"), "wb").write(gzip.compress(f.read(), 9, mtime=0))
    print(dst)
if len(lines) == 2:
  print(f"error: no runs under {root}/grid80 (bash launch/grid80_cpu.sh {root} trains them)", file=sys.stderr)
  sys.exit(2)
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "runs.md"), "w").write("\n".join(lines) + "\n")
EOF
)
dirs=($finished)  # the copied runs (paths without spaces)
if [ ${#dirs[@]} -gt 0 ]; then
  python -m dlgrok.plot "${dirs[@]}" --out "$out/plots" --table | grep -v '\.png$' > "$out/tables.md"
  python - "${dirs[@]}" >> "$out/tables.md" <<'EOF'
import sys
from dlgrok import figstyle, markdown, plot, summary
rows = plot.load(sys.argv[1:])
print("\n" + markdown.group_tables(summary.summarise(rows), order=figstyle.group_key))
print("\nEach model: its first evaluated step at each measure, its final accuracies and its largest train - test "
      "gap\n\n" + markdown.seed_table(rows, order=figstyle.group_key))
EOF
fi
if [ -d "$out/attn_f80" ] && [ -d "$out/none_f80" ]; then  # Figure 9: attention at rank 16 of 128 (12.5 %)
  tmp=$(mktemp -d)
  python -m dlgrok.plot "$out/none_f80" "$out/attn_f80" --ranks p12.5 --out "$tmp" > /dev/null
  mv "$tmp/accuracy_attn.png" "$out/plots/figure9_attn_rank16.png" && rm -r "$tmp"
fi
cat "$out/runs.md"
