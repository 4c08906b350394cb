#!/usr/bin/env bash
# Is `hearth compare` a gate that stays quiet when nothing changed and fires when something did,
# on this machine? Four sets of benchmarks of the default model, each judged by `hearth compare`
# with its defaults (threshold 5 %, 95 % confidence, the `run_drift_pct` setting):
#   A/A separate     two identical runs back to back, COMPARE_PAIRS times: exit 1 is a false alarm
#   A/B separate     a run with --threads 2, then one with --threads 1 (a real change), AB_PAIRS
#                    times: a tpot_ms regression is a detection
#   A/A interleaved  one session (`--interleave`) of two aliases of the same GGUF, COMPARE_PAIRS
#                    times, compared within the run: exit 1 is a false alarm
#   A/B interleaved  one session of the model and its q4_0 variant (`--variants q4_0`), AB_PAIRS
#                    times: a tpot_ms verdict beyond the threshold (either way) is a detection
# Interleaved sessions run every configuration with --threads 1: both stay loaded, and on a
# machine where configurations × threads exceed the cores llama.cpp's OpenMP threads stop
# spinning and every configuration slows alike (README, "Verdicts that hold").
# It measures the gate, not speed: nothing here is a timing claim. The A/A drift table of
# `hearth compare --aa` is printed at the end: what `run_drift_pct` this machine supports.
#
# Usage: perf/compare-gate.sh            (about 35 minutes on two cores; keep the machine idle)
# Environment:
#   HEARTH            the binary (default target/release/hearth, built if missing)
#   COMPARE_PAIRS     A/A pairs per design (default 20)
#   AB_PAIRS          A/B pairs per design (default 10)
#   COMPARE_GATE_DIR  where the store and reports go (default target/compare-gate/<timestamp>)
# Only stdout carries the tables; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { echo "compare-gate: $*" >&2; }

HEARTH=${HEARTH:-$ROOT/target/release/hearth}
if [ ! -x "$HEARTH" ]; then
  log "building hearth"
  cargo build --release --quiet
fi
PAIRS=${COMPARE_PAIRS:-20}
AB=${AB_PAIRS:-10}
DIR=${COMPARE_GATE_DIR:-$ROOT/target/compare-gate/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$DIR/runs"
export HEARTH_DB_URL="$DIR/history.db"
model_path() {
  "$HEARTH" model info smollm2-135m --json 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("path") or "")' || true
}
GGUF=$(model_path)
if [ -z "$GGUF" ] || [ ! -f "$GGUF" ]; then
  "$HEARTH" model download smollm2-135m >&2
  GGUF=$(model_path)
fi
cat >"$DIR/models.json" <<EOF
{"models": [{"alias": "smollm2-a", "path": "$GGUF"}, {"alias": "smollm2-b", "path": "$GGUF"}]}
EOF
COMMON=(--speculative off --ignore-eos --max-tokens 32 --rounds 6 --warmup 1 --requests 4)

# Runs one benchmark and prints its run id.
bench() {
  local out="$DIR/runs/$RANDOM$RANDOM"
  "$HEARTH" bench "${COMMON[@]}" --out "$out" "$@" 2>"$out.log" >/dev/null || true
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run"]["id"])' "$out/report.json"
}

# 1 when the verdicts (comma-separated) contain any of the words given, else 0.
has() {
  local verdicts=$1
  shift
  for w in "$@"; do [[ $verdicts == *"$w"* ]] && echo 1 && return; done
  echo 0
}

# `hearth compare` on the given runs: prints "exit flagged-tpot-verdict".
judge() {
  local code=0
  "$HEARTH" compare "$@" --json >"$DIR/compare.json" || code=$?
  python3 - "$DIR/compare.json" "$code" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
tpot = [r["verdict"] for r in c["rows"] if r["metric"] == "tpot_ms" and r["level"] != "all"]
print(sys.argv[2], ",".join(tpot) or "none")
PY
}

declare -A ALARMS DETECTED TOTAL
AA_SEPARATE=()
for i in $(seq 1 "$PAIRS"); do
  log "A/A separate $i/$PAIRS"
  a=$(bench --models smollm2-135m)
  b=$(bench --models smollm2-135m)
  AA_SEPARATE+=("$a" "$b")
  read -r code _ <<<"$(judge "$a" "$b")"
  ALARMS[aa_separate]=$((${ALARMS[aa_separate]:-0} + (code == 1 ? 1 : 0)))
  TOTAL[aa_separate]=$i
done
for i in $(seq 1 "$AB"); do
  log "A/B separate $i/$AB"
  a=$(bench --models smollm2-135m --threads 2)
  b=$(bench --models smollm2-135m --threads 1)
  read -r code verdicts <<<"$(judge "$a" "$b")"
  DETECTED[ab_separate]=$((${DETECTED[ab_separate]:-0} + $(has "$verdicts" regression)))
  TOTAL[ab_separate]=$i
done
for i in $(seq 1 "$PAIRS"); do
  log "A/A interleaved $i/$PAIRS"
  s=$(bench --models-file "$DIR/models.json" --interleave --threads 1)
  read -r code _ <<<"$(judge "$s")"
  ALARMS[aa_interleaved]=$((${ALARMS[aa_interleaved]:-0} + (code == 1 ? 1 : 0)))
  TOTAL[aa_interleaved]=$i
done
for i in $(seq 1 "$AB"); do
  log "A/B interleaved $i/$AB"
  s=$(bench --models smollm2-135m --variants q4_0 --interleave --threads 1)
  read -r code verdicts <<<"$(judge "$s")"
  DETECTED[ab_interleaved]=$((${DETECTED[ab_interleaved]:-0} + $(has "$verdicts" regression improvement)))
  TOTAL[ab_interleaved]=$i
done

echo "| design | pairs | false alarms (exit 1) | real change detected |"
echo "|---|---:|---:|---:|"
echo "| A/A separate runs | ${TOTAL[aa_separate]} | ${ALARMS[aa_separate]:-0} | — |"
echo "| A/B separate runs (--threads 2 → 1) | ${TOTAL[ab_separate]} | — | ${DETECTED[ab_separate]:-0} |"
echo "| A/A interleaved session | ${TOTAL[aa_interleaved]} | ${ALARMS[aa_interleaved]:-0} | — |"
echo "| A/B interleaved session (Q4_1 → Q4_0) | ${TOTAL[ab_interleaved]} | — | ${DETECTED[ab_interleaved]:-0} |"
echo
"$HEARTH" compare --aa "${AA_SEPARATE[@]}" || true
log "store and reports in $DIR"
