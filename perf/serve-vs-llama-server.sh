#!/usr/bin/env bash
# `hearth serve` next to llama.cpp's own `llama-server`: aggregate output tokens/s and TTFT
# p50/p95 under 1, 2, 4 and 8 concurrent streamed chat requests, same model, same threads.
#
# 1. Builds hearth (release) and the load generator (`benches/serve_load.rs`), and makes sure
#    the reference llama-server exists (built by perf/engine-vs-llama-bench.sh --build-only
#    from the llama.cpp vendored in llama-cpp-python; see that script for how and why).
# 2. Starts both servers, 8 slots each, 1024 tokens of context per slot, THREADS threads:
#      hearth serve --parallel 8 --ctx 1024 --threads T --models smollm2-135m
#      llama-server -np 8 -c 8192 -t T -tb T   (8192 / 8 = 1024 per slot)
# 3. For each concurrency level runs the closed-loop load generator against one server, then
#    the other (the order alternates per level to spread drift in machine load over both); the
#    idle server sleeps meanwhile, so only one is under load at a time.
# 4. Prints a table with the ratios hearth / llama-server and checks the serving goals.
#
# Both servers spin OpenMP threads, so any other CPU load (a build, another benchmark) wrecks
# their numbers. Before each run the script waits for an idle machine; after it, it measures
# how much CPU other programs took (/proc/stat minus server and client) and repeats the run
# once if that exceeded 10%. Rows still disturbed are marked `*` and so are the goal checks
# that rest on them.
#
# Every request: POST /v1/chat/completions, stream, temperature 0, ignore_eos, max_tokens
# (default 128), a prompt from a rotation of distinct short prompts (~43 tokens once templated).
#
# llama-server flags, and why:
#   -np 8 -c 8192   8 slots of 1024 tokens, the same KV room as hearth's --parallel 8 --ctx 1024.
#                   An explicit -np keeps llama-server's per-slot KV streams (kv_unified=false),
#                   which is also what hearth uses.
#   -t T -tb T      the same CPU threads for decoding and for prompt batches as hearth.
#   prompt cache    on in both (llama-server's default; hearth keeps each finished request's
#                   prompt KV on its sequence and reuses the common prefix, e.g. the chat
#                   template's preamble). SERVE_BENCH_LLAMA_CACHE_PROMPT=0 adds
#                   --no-cache-prompt to llama-server, to see its cost without one.
#   defaults kept:  continuous batching (on), flash attention (auto: on for CPU, as in hearth),
#                   -b 2048 / -ub 512 (hearth: 512 / 512; prompts here are far shorter than
#                   either), warm-up, thread polling, slot selection.
#
# Usage: perf/serve-vs-llama-server.sh
# Environment:
#   HEARTH_BENCH_MODEL        GGUF to serve (default: the default model, from scripts/setup.sh)
#   HEARTH_BENCH_THREADS      CPU threads for both servers (default 2)
#   SERVE_BENCH_LEVELS        concurrency levels (default "1 2 4 8")
#   SERVE_BENCH_REQUESTS_PER_WORKER  timed requests per concurrent stream (default 8) ...
#   SERVE_BENCH_MIN_REQUESTS  ... but at least this many per level (default 16)
#   SERVE_BENCH_MAX_TOKENS    tokens generated per request (default 128)
#   SERVE_BENCH_QUIET_WAIT    seconds to wait for other programs to leave the CPU before each
#                             run (default 30; the run then goes ahead, flagged as noisy)
#   SERVE_BENCH_LLAMA_CACHE_PROMPT  0 = switch llama-server's prompt cache off (default 1: on)
#   SERVE_BENCH_LLAMA_ARGS    extra llama-server arguments (for experiments)
#   SERVE_BENCH_HEARTH_BIN    serve with this hearth binary instead of building this tree's
#                             (for A/B experiments)
# Only stdout carries the table; progress goes to stderr; raw JSON and server logs are kept
# under target/serve-bench/<timestamp>/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { echo "serve-bench: $*" >&2; }
die() {
  echo "serve-bench: error: $*" >&2
  exit 1
}
[ $# -eq 0 ] || die "no arguments expected (settings come from the environment; see the header)"

THREADS=${HEARTH_BENCH_THREADS:-2}
LEVELS=${SERVE_BENCH_LEVELS:-1 2 4 8}
PER_WORKER=${SERVE_BENCH_REQUESTS_PER_WORKER:-8}
MIN_REQUESTS=${SERVE_BENCH_MIN_REQUESTS:-16}
MAX_TOKENS=${SERVE_BENCH_MAX_TOKENS:-128}
QUIET_WAIT=${SERVE_BENCH_QUIET_WAIT:-30}
PARALLEL=8
SLOT_CTX=1024
ALIAS=smollm2-135m
# A run is flagged when programs other than the server and the client used more than this
# share of the machine's CPU time during it (both servers spin OpenMP threads, which makes
# them very sensitive to sharing cores).
NOISY_PERCENT=10

for tool in cargo curl python3; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed"
done

# --- the reference llama-server (built by the engine benchmark script) ----------------------
REF_VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
find_llama_server() {
  local preferred=$ROOT/target/llama-ref/build-$REF_VERSION/bin/llama-server candidate
  if [ -x "$preferred" ]; then
    echo "$preferred"
    return
  fi
  for candidate in "$ROOT"/target/llama-ref/build-*/bin/llama-server; do
    [ -x "$candidate" ] && {
      echo "$candidate"
      return
    }
  done
}
LLAMA_SERVER=$(find_llama_server)
if [ -z "$LLAMA_SERVER" ]; then
  log "no reference llama-server yet: building it with perf/engine-vs-llama-bench.sh --build-only"
  perf/engine-vs-llama-bench.sh --build-only
  LLAMA_SERVER=$(find_llama_server)
  [ -n "$LLAMA_SERVER" ] || die "perf/engine-vs-llama-bench.sh --build-only produced no llama-server"
fi

# --- the model ------------------------------------------------------------------------------
if [ -n "${HEARTH_BENCH_MODEL:-}" ]; then
  MODEL=$HEARTH_BENCH_MODEL
else
  MODEL=$(scripts/setup.sh | tail -n 1)
fi
[ -f "$MODEL" ] || die "model not found: '$MODEL' (set HEARTH_BENCH_MODEL or run scripts/setup.sh)"
MODEL=$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")

# --- hearth and the load generator ----------------------------------------------------------
OUT=$ROOT/target/serve-bench/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
# The binaries are copied and run directly, not through cargo, so that another build in this
# tree while the benchmark runs cannot swap them mid-run.
if [ -n "${SERVE_BENCH_HEARTH_BIN:-}" ]; then
  [ -x "$SERVE_BENCH_HEARTH_BIN" ] || die "SERVE_BENCH_HEARTH_BIN=$SERVE_BENCH_HEARTH_BIN is not an executable"
  log "using the hearth binary $SERVE_BENCH_HEARTH_BIN"
  cp "$SERVE_BENCH_HEARTH_BIN" "$OUT/hearth"
else
  log "building hearth (release)"
  cargo build --release --locked >&2 || die "cannot build hearth"
  cp target/release/hearth "$OUT/hearth"
fi
log "building the load generator (benches/serve_load.rs)"
LOADGEN=$(cargo bench --locked --bench serve_load --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "serve_load" and m.get("executable"):
        print(m["executable"])
') || true
[ -x "$LOADGEN" ] || die "cannot build the load generator (try: cargo bench --bench serve_load --no-run)"
cp "$LOADGEN" "$OUT/serve_load"
LOADGEN=$OUT/serve_load
"$LOADGEN" --self-test 2>/dev/null || die "the load generator's self-test failed"

# --- servers --------------------------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
HEARTH_PORT=$(free_port)
LLAMA_PORT=$(free_port)
[ "$HEARTH_PORT" != "$LLAMA_PORT" ] || LLAMA_PORT=$(free_port)

HEARTH_PID=""
LLAMA_PID=""
HEARTH_HOME_DIR=$(mktemp -d)
cleanup() {
  local pid
  for pid in $HEARTH_PID $LLAMA_PID; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $HEARTH_PID $LLAMA_PID; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$HEARTH_HOME_DIR"
  # The binary copies were only needed while running; results and logs stay.
  rm -f "$OUT/hearth" "$OUT/serve_load"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# hearth reads its catalog from $HEARTH_HOME/models.json; an entry with a path serves that GGUF
# in place (nothing is copied or downloaded).
python3 -c 'import json, sys; print(json.dumps({sys.argv[1]: {"path": sys.argv[2]}}))' \
  "$ALIAS" "$MODEL" >"$HEARTH_HOME_DIR/models.json"

wait_healthy() { # name pid port
  local i
  for i in $(seq 1 600); do
    kill -0 "$2" 2>/dev/null || return 1
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$3/health")" = 200 ] && return 0
    sleep 0.2
  done
  return 1
}

log "starting hearth on port $HEARTH_PORT (log: $OUT/hearth.log)"
env -u HEARTH_API_KEY -u HEARTH_LOG HEARTH_HOME="$HEARTH_HOME_DIR" \
  "$OUT/hearth" serve --port "$HEARTH_PORT" --parallel "$PARALLEL" --ctx "$SLOT_CTX" \
  --threads "$THREADS" --models "$ALIAS" >"$OUT/hearth.log" 2>&1 &
HEARTH_PID=$!
wait_healthy hearth "$HEARTH_PID" "$HEARTH_PORT" || {
  tail -n 20 "$OUT/hearth.log" >&2
  die "hearth did not become healthy"
}

LLAMA_ARGS=(-m "$MODEL" -t "$THREADS" -tb "$THREADS" -np "$PARALLEL" -c $((PARALLEL * SLOT_CTX))
  --host 127.0.0.1 --port "$LLAMA_PORT" --alias "$ALIAS")
[ "${SERVE_BENCH_LLAMA_CACHE_PROMPT:-1}" = 1 ] || LLAMA_ARGS+=(--no-cache-prompt)
# shellcheck disable=SC2206 # word splitting of the extra arguments is intended
[ -z "${SERVE_BENCH_LLAMA_ARGS:-}" ] || LLAMA_ARGS+=(${SERVE_BENCH_LLAMA_ARGS})
log "starting llama-server on port $LLAMA_PORT (log: $OUT/llama-server.log)"
log "  $LLAMA_SERVER ${LLAMA_ARGS[*]}"
"$LLAMA_SERVER" "${LLAMA_ARGS[@]}" >"$OUT/llama-server.log" 2>&1 &
LLAMA_PID=$!
wait_healthy llama-server "$LLAMA_PID" "$LLAMA_PORT" || {
  tail -n 20 "$OUT/llama-server.log" >&2
  die "llama-server did not become healthy"
}

# --- CPU accounting: how much of the machine others used during a run -----------------------
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
proc_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
NCPU=$(getconf _NPROCESSORS_ONLN)
HZ=$(getconf CLK_TCK)
# Waits (up to QUIET_WAIT s) until the machine is nearly idle: both servers are, so anything
# busy now is someone else.
wait_quiet() {
  local waited=0 a b
  while [ "$waited" -lt "$QUIET_WAIT" ]; do
    a=$(busy_ticks)
    sleep 1
    b=$(busy_ticks)
    # busy share of the machine in the last second, in percent
    [ $(((b - a) * 100 / (HZ * NCPU))) -lt 15 ] && return 0
    [ "$waited" = 0 ] && log "  other programs are using the CPU; waiting up to ${QUIET_WAIT}s"
    waited=$((waited + 1))
  done
  log "  still busy after ${QUIET_WAIT}s; running anyway (the row will be flagged)"
}

# One measurement: returns 0, or 10 when other programs used more than NOISY_PERCENT of the
# machine meanwhile (the result is kept either way).
measure() { # server-name port pid concurrency requests
  local name=$1 port=$2 pid=$3 c=$4 n=$5 file=$OUT/$1-c$4.json
  wait_quiet
  log "$name: concurrency $c, $n requests"
  local busy0 srv0 t0 busy1 srv1 t1
  busy0=$(busy_ticks)
  srv0=$(proc_ticks "$pid")
  t0=$(date +%s.%N)
  "$LOADGEN" --url "http://127.0.0.1:$port/v1" --model "$ALIAS" --concurrency "$c" \
    --requests "$n" --max-tokens "$MAX_TOKENS" --label "$name c=$c" >"$file.tmp" \
    2> >(sed 's/^/  /' >&2) || die "the load generator failed against $name"
  t1=$(date +%s.%N)
  busy1=$(busy_ticks)
  srv1=$(proc_ticks "$pid")
  # Add what the machine looked like to the client's report.
  local status=0
  python3 - "$file.tmp" "$file" "$((busy1 - busy0))" "$((srv1 - srv0))" "$t0" "$t1" "$HZ" "$NCPU" \
    "$NOISY_PERCENT" <<'PY' || status=$?
import json, sys
src, dst, busy, server, t0, t1, hz, ncpu, noisy = sys.argv[1:]
r = json.loads(open(src).read().strip().splitlines()[-1])
capacity = (float(t1) - float(t0)) * int(hz) * int(ncpu)
client = r.get("client_cpu_ticks") or 0
r["server_cpu_share"] = int(server) / capacity
r["other_cpu_share"] = max(0, int(busy) - int(server) - client) / capacity
json.dump(r, open(dst, "w"))
if r["other_cpu_share"] > float(noisy) / 100:
    print(f"serve-bench:   other programs used {100 * r['other_cpu_share']:.0f}% of the CPU "
          "during this run", file=sys.stderr)
    sys.exit(10)
PY
  rm -f "$file.tmp"
  return "$status"
}

# Measures, and measures once more if other programs disturbed the first attempt.
run_load() { # server-name port pid concurrency requests
  local status=0
  measure "$@" || status=$?
  if [ "$status" = 10 ]; then
    log "  repeating this run"
    status=0
    measure "$@" || status=$?
  fi
  case $status in
    0 | 10) ;;
    *) die "could not record the $1 run at concurrency $4" ;;
  esac
}

log "levels: $LEVELS; max_tokens $MAX_TOKENS; threads $THREADS; $PER_WORKER requests per stream (at least $MIN_REQUESTS per level)"
i=0
for c in $LEVELS; do
  n=$((c * PER_WORKER))
  [ "$n" -ge "$MIN_REQUESTS" ] || n=$MIN_REQUESTS
  if [ $((i % 2)) = 0 ]; then
    run_load hearth "$HEARTH_PORT" "$HEARTH_PID" "$c" "$n"
    run_load llama-server "$LLAMA_PORT" "$LLAMA_PID" "$c" "$n"
  else
    run_load llama-server "$LLAMA_PORT" "$LLAMA_PID" "$c" "$n"
    run_load hearth "$HEARTH_PORT" "$HEARTH_PID" "$c" "$n"
  fi
  i=$((i + 1))
done
log "raw results and server logs in $OUT"

# --- report ---------------------------------------------------------------------------------
python3 - "$OUT" "$THREADS" "$MAX_TOKENS" "$NOISY_PERCENT" "$MODEL" "$LLAMA_SERVER" $LEVELS <<'PY'
import json, os, sys

out, threads, max_tokens, noisy_pct, model, llama_server, *levels = sys.argv[1:]
levels = [int(c) for c in levels]
noisy = float(noisy_pct) / 100

def load(name, c):
    return json.load(open(os.path.join(out, f"{name}-c{c}.json")))

rows = {c: (load("hearth", c), load("llama-server", c)) for c in levels}

def ratio(a, b):
    return a / b if a is not None and b else None

def f(v, spec=".1f"):
    return "n/a" if v is None else format(v, spec)

print(f"hearth serve vs llama-server: {os.path.basename(model)}, {threads} threads, 8 slots x 1024 ctx, "
      f"streamed chat, max_tokens {max_tokens}, ignore_eos, temperature 0")
print(f"llama-server: {llama_server}")
print()
header = (f"{'conc':>4} | {'reqs':>4} | {'hearth tok/s':>12} | {'llama tok/s':>11} | {'ratio':>5} | "
          f"{'hearth TTFT p50/p95 ms':>22} | {'llama TTFT p50/p95 ms':>21} | {'p50 ratio':>9} | {'p95 ratio':>9} | "
          f"{'hearth/llama req tok/s':>22} | other CPU")
print(header)
print("-" * len(header))
flagged = False
for c in levels:
    h, l = rows[c]
    hp50, hp95 = h["ttft_ms"]["p50"], h["ttft_ms"]["p95"]
    lp50, lp95 = l["ttft_ms"]["p50"], l["ttft_ms"]["p95"]
    other = max(h["other_cpu_share"], l["other_cpu_share"])
    mark = ""
    if other > noisy:
        mark = " *"
        flagged = True
    fails = h["failures"] + l["failures"]
    reqs = f"{h['requests']}" if h["requests"] == l["requests"] else f"{h['requests']}/{l['requests']}"
    print(f"{c:>4} | {reqs:>4} | {h['output_tok_s']:>12.1f} | {l['output_tok_s']:>11.1f} | "
          f"{f(ratio(h['output_tok_s'], l['output_tok_s']), '.2f'):>5} | "
          f"{f(hp50) + ' / ' + f(hp95):>22} | {f(lp50) + ' / ' + f(lp95):>21} | "
          f"{f(ratio(hp50, lp50), '.2f'):>9} | {f(ratio(hp95, lp95), '.2f'):>9} | "
          f"{f(h['decode_tok_s_mean']) + ' / ' + f(l['decode_tok_s_mean']):>22} | "
          f"{100 * other:4.0f}%{mark}" + (f"  ({fails} failed)" if fails else ""))
print()
print("ratio = hearth / llama-server (tok/s: higher is better for hearth; TTFT: lower is). "
      "req tok/s = mean per-request decode rate.")
if flagged:
    print(f"* other programs used more than {noisy_pct}% of the machine's CPU during this level; "
          "its numbers are unreliable.")
prompt = [rows[c][i].get("prompt_tokens_mean") for c in levels for i in (0, 1)]
if all(p is not None for p in prompt):
    print(f"prompt tokens per request (mean): hearth {rows[levels[0]][0]['prompt_tokens_mean']:.1f}, "
          f"llama-server {rows[levels[0]][1]['prompt_tokens_mean']:.1f}")
if not all(rows[c][i]["usage_reported"] for c in levels for i in (0, 1)):
    print("note: a server sent no usage chunk; its completion tokens were counted as content chunks")
print()

noisy_levels = {c for c in levels if max(rows[c][0]["other_cpu_share"], rows[c][1]["other_cpu_share"]) > noisy}

def check(name, ok, detail, needs=()):
    verdict = "n/a " if ok is None else ("PASS" if ok else "FAIL")
    disturbed = sorted(c for c in needs if c in noisy_levels)
    if ok is not None and disturbed:
        detail += f"  [unreliable: level {', '.join(map(str, disturbed))} was disturbed]"
    print(f"[{verdict}] {name}: {detail}")

h1, l1 = rows.get(1, (None, None))
h8, l8 = rows.get(8, (None, None))
print("goals:")
if h1 and h8:
    r = h8["output_tok_s"] / h1["output_tok_s"]
    check("hearth at 8 concurrent >= 0.95x its single-request throughput", r >= 0.95,
          f"{h8['output_tok_s']:.1f} vs {h1['output_tok_s']:.1f} tok/s = {r:.2f}x", (1, 8))
else:
    check("hearth at 8 concurrent >= 0.95x its single-request throughput", None, "needs levels 1 and 8")
if h8:
    r = h8["output_tok_s"] / l8["output_tok_s"]
    check("hearth at 8 >= 1.1x llama-server at 8", r >= 1.1,
          f"{h8['output_tok_s']:.1f} vs {l8['output_tok_s']:.1f} tok/s = {r:.2f}x", (8,))
    hp, lp = h8["ttft_ms"]["p95"], l8["ttft_ms"]["p95"]
    check("hearth TTFT p95 at 8 no worse than llama-server's", hp <= lp,
          f"{hp:.1f} vs {lp:.1f} ms = {hp / lp:.2f}x", (8,))
else:
    check("hearth at 8 >= 1.1x llama-server at 8", None, "needs level 8")
    check("hearth TTFT p95 at 8 no worse than llama-server's", None, "needs level 8")
if h1:
    hp, lp = h1["ttft_ms"]["p50"], l1["ttft_ms"]["p50"]
    check("hearth TTFT p50 at 1 within 5% of llama-server's (<= 1.05x)", hp <= 1.05 * lp,
          f"{hp:.1f} vs {lp:.1f} ms = {hp / lp:.2f}x", (1,))
else:
    check("hearth TTFT p50 at 1 within 5% of llama-server's (<= 1.05x)", None, "needs level 1")
PY
