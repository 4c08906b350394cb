#!/usr/bin/env bash
# Shape models against the real thing, and the SLM-vs-LLM ladder on this machine.
#
# What it measures, each model through benches/engine.rs (hearth's engine, llama-bench's terms:
# pp512 = prefill of exactly 512 tokens, tg128 = 128 decoded tokens, speculation off and refused
# if any token was drafted, a fresh prompt per repetition so no prefill is served from cache;
# peak RSS = the bench process's VmHWM at a 1024-token context):
# 1. Twin: the default model (SmolLM2-135M-Instruct Q4_1) against its shape twin
#    (`hearth model synth smollm2-135m`: same shape and type, random weights), in alternating
#    rounds so machine noise falls on both. Prints twin/real ratios; FAIL past ±5 % on pp512 or
#    tg128, or ±10 % on peak RSS.
# 2. Ladder: the real models shipped with the project (the default model; gemma3-270m when
#    setup.sh installed it) and shape models of catalog entries up to a ≥ 3B one (7B with
#    SHAPES_7B=1): decode tok/s at c=1 (tg128), TTFT of a 512-token prompt on an idle server
#    (512 / pp512), peak RSS, and `hearth model info`'s memory estimate at the same context
#    against that RSS (FAIL past ±10 % for models of ≥ 1B parameters). The estimate counted is
#    the model's total plus the prompt cache's bound (`memory.prompt_cache_bytes`): the bench's
#    fresh prompt per repetition sends the one before it into the cache, which fills to one
#    sequence's KV within a few repetitions.
#
# Usage: perf/shape-models.sh
# Environment:
#   HEARTH_BENCH_THREADS  CPU threads (default 2)
#   BENCH_REPS            repetitions per test after one warm-up (twin default 3, ladder 1)
#   BENCH_ROUNDS          alternating rounds of real and twin (default 4; medians are compared)
#   SHAPES                ladder shapes (default: qwen2.5-0.5b llama-3.2-1b qwen2.5-1.5b phi-3.5-mini;
#                         empty: the real models only)
#   SHAPES_7B=1           add mistral-7b~shape (about 4.4 GB on disk; minutes per test on 2 cores)
# Only stdout carries the tables; progress goes to stderr. Shape models are made in a private
# HEARTH_HOME under target/shape-perf (kept between runs: synthesising is seconds, not minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "shape-perf: $*" >&2; }

THREADS=${HEARTH_BENCH_THREADS:-2}
ROUNDS=${BENCH_ROUNDS:-4}
TWIN_REPS=${BENCH_REPS:-3}
LADDER_REPS=${BENCH_REPS:-1}
SHAPES=${SHAPES-qwen2.5-0.5b llama-3.2-1b qwen2.5-1.5b phi-3.5-mini}
[ "${SHAPES_7B:-0}" = 1 ] && SHAPES="$SHAPES mistral-7b"
CTX=1024 # benches/engine.rs's context; the estimate is asked for the same

real=$(scripts/setup.sh | tail -n 1)
gemma=$(dirname "$real")/gemma-3-270m-q4_k_m.gguf
cargo build --release --locked >&2
bench_bin=$(cargo bench --locked --bench engine --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "engine":
        print(m["executable"])')
[ -x "$bench_bin" ] || { log "cannot build benches/engine.rs"; exit 1; }

export HEARTH_HOME=$PWD/target/shape-perf
mkdir -p "$HEARTH_HOME"
hearth() { target/release/hearth "$@"; }
path_of() { hearth model info "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])'; }

synth() { # makes ALIAS~shape unless it is cached; prints its file
  if ! hearth cache list --json | grep -q "\"alias\": \"$1~shape\""; then
    log "making $1~shape"
    hearth model synth "$1" >&2
  fi
  path_of "$1~shape"
}

# One engine bench; prints its JSON line.
engine() { # FILE REPS
  HEARTH_BENCH_MODEL=$1 HEARTH_BENCH_THREADS=$THREADS BENCH_REPS=$2 "$bench_bin" 2>/dev/null
}

# --- 1. the default model against its twin ---------------------------------------------------
twin=$(synth smollm2-135m)
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for who in real twin; do
    file=$real
    [ $who = twin ] && file=$twin
    log "round $round/$ROUNDS: $who"
    echo "$who $(engine "$file" "$TWIN_REPS")" >>"$results"
  done
done

twin_status=0
python3 - "$results" <<'PY' || twin_status=$?
import json, sys
rows = {"real": [], "twin": []}
for line in open(sys.argv[1]):
    who, js = line.split(" ", 1)
    rows[who].append(json.loads(js))
def mean(who, key):
    # The median of every sample over all rounds: this VM's noise is ±20 % between runs.
    vals = sorted(s for r in rows[who] for s in (r[key]["samples"] if key != "peak_rss_bytes" else [r[key]]))
    return vals[len(vals) // 2]
print("## Shape twin of the default model (SmolLM2-135M-Instruct Q4_1), same run\n")
print("| figure | real | shape twin | twin / real | limit | verdict |")
print("|---|---|---|---|---|---|")
ok = True
for key, name, limit, fmt in [("pp512", "prefill tok/s (512-token prompt)", 0.05, "{:.1f}"),
                              ("tg128", "decode tok/s (speculation off)", 0.05, "{:.1f}"),
                              ("peak_rss_bytes", "peak RSS MiB", 0.10, "{:.1f}")]:
    r, t = mean("real", key), mean("twin", key)
    if key == "peak_rss_bytes":
        r, t = r / 2**20, t / 2**20
    ratio = t / r
    good = abs(ratio - 1) <= limit
    ok &= good
    print(f"| {name} | {fmt.format(r)} | {fmt.format(t)} | {ratio:.3f} | ±{limit:.0%} | {'PASS' if good else 'FAIL'} |")
print(f"\n{len(rows['real'])} alternating rounds per file; medians of all repetitions.\n")
sys.exit(0 if ok else 3)
PY

# --- 2. the ladder -----------------------------------------------------------------------------
ladder=$(mktemp)
trap 'rm -f "$results" "$ladder"' EXIT
measure() { # ALIAS FILE
  log "ladder: $1"
  estimate=$(HEARTH_CTX=$CTX hearth model info "$1" --json | python3 -c 'import json,sys
d = json.load(sys.stdin)
m = d["memory"]
print(m["total_bytes"] + (m.get("prompt_cache_bytes") or 0), d["gguf"]["n_params"], d["gguf"]["file_size"], d["gguf"].get("quantization") or "?")')
  echo "$1 $estimate $(engine "$2" "$LADDER_REPS")" >>"$ladder"
}
if ! hearth cache list --json | grep -q '"alias": "smollm2-135m"'; then
  hearth model add "$real" --alias smollm2-135m >&2
fi
measure smollm2-135m "$real"
if [ -f "$gemma" ]; then
  hearth cache list --json | grep -q '"alias": "gemma3-270m"' || hearth model add "$gemma" --alias gemma3-270m >&2
  measure gemma3-270m "$gemma"
fi
for s in $SHAPES; do
  measure "$s~shape" "$(synth "$s")"
done

ladder_status=0
python3 - "$ladder" <<'PY' || ladder_status=$?
import json, sys
print("## The ladder on this machine (c=1, 2 threads unless HEARTH_BENCH_THREADS)\n")
print("| model | params | type | file MiB | decode tok/s | TTFT 512-token prompt ms | peak RSS MiB | estimate MiB | estimate / RSS |")
print("|---|---|---|---|---|---|---|---|---|")
ok = True
for line in open(sys.argv[1]):
    alias, est, params, size, quant, js = line.split(" ", 5)
    r = json.loads(js)
    est, params, size = int(est), int(params), int(size)
    rss = r["peak_rss_bytes"]
    ratio = est / rss
    big = params >= 1_000_000_000
    flag = ""
    if big and abs(ratio - 1) > 0.10:
        ok = False
        flag = " FAIL"
    print(f"| {alias} | {params/1e9:.2f}B | {quant} | {size/2**20:.0f} | {r['tg128']['mean']:.1f} | "
          f"{512 / r['pp512']['mean'] * 1000:.0f} | {rss/2**20:.0f} | {est/2**20:.0f} | {ratio:.2f}{flag} |")
print("\nShape models (`~shape`) have random weights: their speed and memory are real, their answers are not.")
sys.exit(0 if ok else 3)
PY
exit $((twin_status | ladder_status))
