#!/usr/bin/env bash
# Quantisation variants of the default model side by side: size, prompt and decode speed
# (llama.cpp's own llama-bench, pp512 / tg128, same threads) and quality from `hearth bench`
# (automatic checks, and the default model as judge). The reference llama-bench is the one
# perf/engine-vs-llama-bench.sh builds (run it with --build-only first).
#
# Usage: perf/variants.sh [TYPES]   (default: q4_0,q8_0; the Q4_1 source is always included)
# Environment: HEARTH_BENCH_THREADS (default 2), BENCH_REPS (default 3).
# Only stdout carries the table; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
TYPES=${1:-q4_0,q8_0}
THREADS=${HEARTH_BENCH_THREADS:-2}
REPS=${BENCH_REPS:-3}
BENCH=$(ls -d target/llama-ref/build-*/bin/llama-bench 2>/dev/null | head -n 1 || true)
[ -x "$BENCH" ] || { echo "variants: no llama-bench; run perf/engine-vs-llama-bench.sh --build-only" >&2; exit 1; }
model=$(scripts/setup.sh | tail -n 1)
cargo build --release --locked >&2
bin=target/release/hearth
export HEARTH_HOME=${HEARTH_HOME:-$PWD/target/variants-home}
export HEARTH_THREADS=$THREADS
$bin cache list --json | grep -q '"alias": "smollm2-135m"' || $bin model add "$model" --alias smollm2-135m >&2
names=smollm2-135m
for t in ${TYPES//,/ }; do
  $bin model info "smollm2-135m@$t" >/dev/null 2>&1 || $bin model quantize smollm2-135m --type "$t" >&2
  names="$names,smollm2-135m@$t"
done
out=$(mktemp -d)
$bin bench --models "$names" --rounds 1 --judge smollm2-135m --out "$out" >&2
printf '| variant | size MiB | pp512 t/s | tg128 t/s | checks passed | judge score (1–5) |\n|---|---|---|---|---|---|\n'
for name in ${names//,/ }; do
  file=$($bin model info "$name" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])')
  speeds=$("$BENCH" -m "$file" -t "$THREADS" -p 512 -n 128 -r "$REPS" -o json 2>/dev/null |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(" ".join("%.1f" % x["avg_ts"] for x in r))')
  python3 - "$out/report.json" "$name" "$file" $speeds <<'PY'
import json, os, sys
report, name, path, pp, tg = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
m = next(m for m in json.load(open(report))["models"] if m["model"] == name)
q = m["quality"]
checks = f'{q["checks_passed"]}/{q["checks_total"]}'
score = "—" if q.get("judge_score") is None else f'{q["judge_score"]:.2f} ({q["judge_scored"]})'
print(f"| {name} | {os.path.getsize(path) / 2**20:.1f} | {pp} | {tg} | {checks} | {score} |")
PY
done
