#!/usr/bin/env bash
# `hearth tune` on the two workloads the README reports, each within `--budget 20m`:
#   long   long prompts, throughput-bound SLO: 512±128 prompt tokens, 128±32 answer tokens,
#          closed-loop concurrency 4, e2e ≤ 10 s; slots 2 and 4 besides serve's default 8
#   short  short prompts, tight TTFT SLO: 64±16 prompt tokens, 64±16 answer tokens, TTFT ≤ 1 s,
#          no load given: each configuration at the concurrency of its slots (1, 2, 4, 8), so
#          the search finds the highest rate that meets the SLO
# Both search smollm2-135m and its q4_0 variant (made when missing) × slots × drafts, then KV
# type, flash attention and batch around the pick, and confirm the winner against the default
# (`hearth serve` with no flags) in alternating rounds. What each prints: the pick, the
# confirm run's goodput ratio with its 95 % interval, the wall time, and the stored tune's id
# (`hearth report TUNE --format html` draws its Pareto chart).
#
# The prompts are generated and seeded (the same for every configuration); nothing is cached
# between configurations (each probe is a fresh server). A result is refused when the search
# ran past its budget.
#
# Usage: perf/tune-workloads.sh [long|short]...   (default: both)
# Environment: HEARTH (default target/release/hearth), BUDGET (default 20m).
set -euo pipefail
cd "$(dirname "$0")/.."
HEARTH=${HEARTH:-target/release/hearth}
BUDGET=${BUDGET:-20m}
[ -x "$HEARTH" ] || cargo build --release --quiet
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(long short)
for w in "${workloads[@]}"; do
  case $w in
    long) flags=(--parallel 2,4 --concurrency 4 --input-tokens 512:128 --output-tokens 128:32
      --requests 4 --rounds 2 --slo e2e=10s) ;;
    short) flags=(--input-tokens 64:16 --output-tokens 64:16 --requests 8 --rounds 2
      --slo ttft=1s) ;;
    *) echo "tune-workloads: unknown workload $w (long, short)" >&2; exit 2 ;;
  esac
  start=$(date +%s)
  doc=$(mktemp)
  "$HEARTH" tune --models smollm2-135m --variants q4_0 "${flags[@]}" --budget "$BUDGET" --json >"$doc"
  secs=$(( $(date +%s) - start ))
  python3 - "$w" "$secs" "$BUDGET" "$doc" <<'PY'
import json, sys
w, secs, budget = sys.argv[1], int(sys.argv[2]), sys.argv[3]
d = json.load(open(sys.argv[4]))
unit = {"s": 1, "m": 60, "h": 3600}
allowed = float(budget[:-1]) * unit[budget[-1]] if budget[-1] in unit else float(budget)
if secs > allowed * 1.05:
    sys.exit(f"tune-workloads: {w} took {secs}s, past its budget of {budget}: not a result")
win, base, c = d["winner"], d["baseline"], d["confirm"]
print(f"## {w}: load {d['load']}, SLO {d['slo']}, {secs // 60}m{secs % 60:02d}s")
print(f"- pick: {win['serve_command']} ({win['goodput_rps']:.2f} req/s in the search)")
print(f"- default: {base['serve_command']} ({base['goodput_rps'] or 0:.2f} req/s)")
if c is None:
    print("- no confirm run (the default won, or the budget left no room)")
elif c["ratio"] is not None and c["interval"] is not None:
    print(f"- confirmed: goodput ×{c['ratio']:.2f} [{c['interval'][0]:.2f}, {c['interval'][1]:.2f}] over {c['rounds']} paired rounds")
else:
    print(f"- confirmed: {c['winner_goodput_rps']:.2f} against {c['default_goodput_rps']:.2f} req/s ({c.get('note', '')})")
PY
  rm -f "$doc"
done
