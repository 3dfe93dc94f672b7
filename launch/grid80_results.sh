#!/usr/bin/env bash
# The 80 % grid's results folder from its workdirs (launch/grid80_cpu.sh): each run's config.json and gzipped
# metrics, runs.md (steps reached, wall time with any pauses, model-steps/s), the figures, the tables and Figure 9.
# Unfinished runs are copied too, and runs.md says how far they got.
#   bash launch/grid80_results.sh [ROOT] [OUT]   # ROOT as for grid80_cpu.sh (default runs); OUT results/mod97_f80
set -euo pipefail
root=${1:-runs}
out=${2:-results/mod97_f80}
dirs=()
for g in none attn ffn all out tok pos; do
  src="$root/grid80/${g}_f80"
  [ -f "$src/metrics.jsonl" ] || continue
  mkdir -p "$out/${g}_f80"
  cp "$src/config.json" "$out/${g}_f80/"
  gzip -9 -n -c "$src/metrics.jsonl" > "$out/${g}_f80/metrics.jsonl.gz"
  dirs+=("$out/${g}_f80")
done
if [ ${#dirs[@]} -eq 0 ]; then
  echo "error: no runs under $root/grid80 (launch/grid80_cpu.sh $root trains them)" >&2
  exit 2
fi
python - "${dirs[@]}" > "$out/runs.md" <<'EOF'
import sys
from dlgrok import metrics, run_config
print("| run | models | steps reached / planned | wall (h) | model-steps/s |\n|---|---|---|---|---|")
for d in sys.argv[1:]:
  rows, steps = metrics.read(d), int(run_config.read(d)["steps"])
  last = max(r["step"] for r in rows)
  models, wall = len({r["model"] for r in rows}), max(r["wall"] for r in rows)
  print(f"| {d.rsplit('/', 1)[-1]} | {models} | {last} / {steps} | {wall / 3600:.2f} | {models * last / wall:.1f} |")
EOF
python -m dlgrok.plot "${dirs[@]}" --out "$out/plots" --table | grep -v '\.png$' > "$out/tables.md"
if [ -d "$out/attn_f80" ]; then  # Figure 9: attention at rank 16 of 128 (12.5 %) against the baseline
  tmp=$(mktemp -d)
  python -m dlgrok.plot "$out/none_f80" "$out/attn_f80" --ranks p12.5 --out "$tmp" > /dev/null
  mv "$tmp/accuracy_attn.png" "$out/plots/figure9_attn_rank16.png" && rm -r "$tmp"
fi
cat "$out/runs.md"
