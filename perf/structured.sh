#!/usr/bin/env bash
# Structured output at free-text speed (issue #30): decode tokens/s of JSON-schema answers over
# free answers to the same prompts, hearth next to llama.cpp's own llama-server, on
# smollm2-135m (49k vocabulary) and gemma3-270m (262k), at 1 and 8 concurrent streams (at 8,
# all eight sequences constrained); and what a schema costs to compile.
#
# The prompts are hearth's built-in `structured` prompt set (src/bench/prompts/structured.json):
# six extraction and generation tasks (an order with nested address and items, action items,
# ticket triage, a product listing, a calendar event, a recipe) with realistic schemas (nested
# objects, arrays of objects, enums, patterns, bounded numbers), each also asked without a
# schema. Every request is streamed at temperature 0 without ignore_eos (a structured answer
# ends where its document does), through the load generator's `set` workload
# (benches/serve_load.rs); the figure is its `decode_tok_s_mean`: per request, (completion
# tokens - 1) / (last token - first token), so prefill and answer length do not enter it.
#
# 1. Builds hearth, the load generator and the constraint benchmark (benches/constraint.rs),
#    and makes sure the reference llama-server exists (perf/engine-vs-llama-bench.sh
#    --build-only) and both models are cached (scripts/setup.sh).
# 2. Per model: starts hearth serve (8 slots of 1024 tokens, THREADS threads, drafts off:
#    HEARTH_SPECULATIVE=off) and llama-server (-np 8 -c 8192, same threads, its GBNF sampler);
#    then, per level (1, 8), runs the free set and the JSON set against each server, in an order
#    that alternates between levels, and repeats the whole pass STRUCTURED_BENCH_PASSES times
#    (default 2): each ratio is the median over passes of JSON / free decode tok/s.
# 3. Runs the constraint benchmark per model: the token trie's build, and every schema of the
#    set compiled BENCH_REPS (20) times past the cache: p50 / p99 / max milliseconds.
# 4. Prints a table per model and the goals:
#      - hearth: JSON decode tok/s >= 0.95x free text, at 1 and at 8 streams, on both models;
#      - schema compile p99 < 50 ms on both models;
#    and, for reference (not goals), llama-server's own ratio and hearth's JSON decode tok/s
#    over llama-server's.
#
# Refused, not reported: a hearth run in which tokens were drafted (drafts make decode faster
# than the kernels: the ratio would measure the draft, not the constraint), and a JSON run
# with an answer that does not parse (the constraint did not hold).
#
# Settings (environment):
#   HEARTH_BENCH_THREADS      threads for both servers (default 2)
#   STRUCTURED_BENCH_MODELS   aliases to measure (default "smollm2-135m gemma3-270m")
#   STRUCTURED_BENCH_LEVELS   concurrency levels (default "1 8")
#   STRUCTURED_BENCH_PASSES   passes over levels and sets (default 2)
#   STRUCTURED_BENCH_REQUESTS requests per run at 1 stream (default 6: the set once); at 8
#                             streams 4x as many
# Results: target/structured-bench/<timestamp>/ (raw JSON per run, server logs, summary).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { echo "structured-bench: $*" >&2; }
die() {
  echo "structured-bench: error: $*" >&2
  exit 1
}
[ $# -eq 0 ] || die "no arguments expected (settings come from the environment; see the header)"

THREADS=${HEARTH_BENCH_THREADS:-2}
MODELS=${STRUCTURED_BENCH_MODELS:-smollm2-135m gemma3-270m}
LEVELS=${STRUCTURED_BENCH_LEVELS:-1 8}
PASSES=${STRUCTURED_BENCH_PASSES:-2}
REQUESTS=${STRUCTURED_BENCH_REQUESTS:-6}
PARALLEL=8
SLOT_CTX=1024
for v in THREADS PASSES REQUESTS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v}: a whole number of at least 1 is needed"
done
for c in $LEVELS; do
  [[ $c =~ ^[1-9][0-9]*$ ]] || die "STRUCTURED_BENCH_LEVELS: '$c' is not a concurrency level"
done
for tool in cargo curl python3; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed"
done

# --- reference server, models, binaries -----------------------------------------------------
REF_VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
LLAMA_SERVER=$ROOT/target/llama-ref/build-$REF_VERSION/bin/llama-server
if [ ! -x "$LLAMA_SERVER" ]; then
  log "no reference llama-server yet: building it with perf/engine-vs-llama-bench.sh --build-only"
  perf/engine-vs-llama-bench.sh --build-only
fi
[ -x "$LLAMA_SERVER" ] || die "no llama-server at $LLAMA_SERVER"

SMOL=$(scripts/setup.sh | tail -n 1)
[ -f "$SMOL" ] || die "scripts/setup.sh gave no model ('$SMOL')"
MODEL_DIR=$(cd "$(dirname "$SMOL")" && pwd)
declare -A GGUF=([smollm2-135m]=$MODEL_DIR/$(basename "$SMOL") [gemma3-270m]=$MODEL_DIR/gemma-3-270m-q4_k_m.gguf)
for m in $MODELS; do
  [ -n "${GGUF[$m]:-}" ] || die "STRUCTURED_BENCH_MODELS: '$m' is not one of ${!GGUF[*]}"
  [ -f "${GGUF[$m]}" ] || die "${GGUF[$m]} is missing (scripts/setup.sh fetches both models)"
done

OUT=$ROOT/target/structured-bench/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
log "building hearth (release)"
cargo build --release --locked >&2 || die "cannot build hearth"
cp target/release/hearth "$OUT/hearth"
bench_exe() { # name
  cargo bench --locked --bench "$1" --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == sys.argv[1] and m.get("executable"):
        print(m["executable"])
' "$1"
}
log "building the load generator and the constraint benchmark"
LOADGEN=$(bench_exe serve_load) || true
COMPILE=$(bench_exe constraint) || true
[ -x "$LOADGEN" ] || die "cannot build benches/serve_load.rs"
[ -x "$COMPILE" ] || die "cannot build benches/constraint.rs"
cp "$LOADGEN" "$OUT/serve_load"
cp "$COMPILE" "$OUT/constraint"

# The two halves of the prompt set, as the load generator reads them.
python3 - "$ROOT/src/bench/prompts/structured.json" "$OUT" <<'EOF'
import json, sys
items = json.load(open(sys.argv[1]))
json.dump([i for i in items if "response_format" in i], open(sys.argv[2] + "/json.json", "w"))
json.dump([i for i in items if "response_format" not in i], open(sys.argv[2] + "/free.json", "w"))
EOF

declare -A PORT PID
HOMES=()
cleanup() {
  local pid
  for pid in ${PID[@]+"${PID[@]}"}; do kill "$pid" 2>/dev/null || true; done
  for pid in ${PID[@]+"${PID[@]}"}; do wait "$pid" 2>/dev/null || true; done
  rm -rf ${HOMES[@]+"${HOMES[@]}"}
  rm -f "$OUT/hearth" "$OUT/serve_load" "$OUT/constraint"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_healthy() { # pid port log
  local i
  for i in $(seq 1 600); do
    kill -0 "$1" 2>/dev/null || break
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/health")" = 200 ] && return 0
    sleep 0.2
  done
  tail -n 20 "$3" >&2
  return 1
}
start_servers() { # alias
  local alias=$1 home
  stop_servers
  home=$(mktemp -d)
  HOMES+=("$home")
  python3 -c 'import json, sys; print(json.dumps({sys.argv[1]: {"path": sys.argv[2]}}))' \
    "$alias" "${GGUF[$alias]}" >"$home/models.json"
  PORT[hearth]=$(free_port)
  env -u HEARTH_API_KEY -u HEARTH_LOG HEARTH_SPECULATIVE=off HEARTH_HOME="$home" \
    "$OUT/hearth" serve --port "${PORT[hearth]}" --parallel "$PARALLEL" --ctx "$SLOT_CTX" \
    --threads "$THREADS" --models "$alias" >"$OUT/hearth-$alias.log" 2>&1 &
  PID[hearth]=$!
  wait_healthy "${PID[hearth]}" "${PORT[hearth]}" "$OUT/hearth-$alias.log" || die "hearth did not start"
  PORT[llama-server]=$(free_port)
  "$LLAMA_SERVER" -m "${GGUF[$alias]}" -t "$THREADS" -tb "$THREADS" -np "$PARALLEL" \
    -c $((PARALLEL * SLOT_CTX)) --host 127.0.0.1 --port "${PORT[llama-server]}" --alias "$alias" \
    >"$OUT/llama-server-$alias.log" 2>&1 &
  PID[llama-server]=$!
  wait_healthy "${PID[llama-server]}" "${PORT[llama-server]}" "$OUT/llama-server-$alias.log" ||
    die "llama-server did not start"
}
stop_servers() {
  local name
  for name in hearth llama-server; do
    if [ -n "${PID[$name]:-}" ]; then
      kill "${PID[$name]}" 2>/dev/null || true
      wait "${PID[$name]}" 2>/dev/null || true
      unset "PID[$name]"
    fi
  done
}

run_one() { # alias server set level pass
  local alias=$1 server=$2 set=$3 c=$4 pass=$5 n=$REQUESTS file
  [ "$c" -gt 1 ] && n=$((REQUESTS * 4))
  file=$OUT/$alias-$server-$set-c$c-p$pass.json
  log "$alias, $server, $set set, $c streams, pass $pass: $n requests"
  "$OUT/serve_load" --url "http://127.0.0.1:${PORT[$server]}/v1" --model "$alias" \
    --prompt-set "$OUT/$set.json" --concurrency "$c" --requests "$n" \
    --label "$alias $server $set c=$c" >"$file" || die "the load generator failed ($file)"
  python3 - "$file" "$server" "$set" <<'EOF' || die "refused: $file"
import json, sys
r = json.load(open(sys.argv[1]))
if r["failures"]:
    sys.exit(f"{r['failures']} failed requests: {r.get('errors')}")
if sys.argv[2] == "hearth" and r.get("draft_tokens", 0):
    sys.exit(f"hearth drafted {r['draft_tokens']} tokens: the ratio would measure drafts")
EOF
}

for alias in $MODELS; do
  log "=== $alias ==="
  start_servers "$alias"
  for pass in $(seq 1 "$PASSES"); do
    flip=0
    for c in $LEVELS; do
      order=(hearth llama-server)
      sets=(free json)
      if [ $(((flip + pass) % 2)) = 1 ]; then
        order=(llama-server hearth)
        sets=(json free)
      fi
      flip=$((flip + 1))
      for server in "${order[@]}"; do
        for set in "${sets[@]}"; do run_one "$alias" "$server" "$set" "$c" "$pass"; done
      done
    done
  done
  stop_servers
  log "$alias: compiling the set's schemas (benches/constraint.rs)"
  HEARTH_BENCH_MODEL=${GGUF[$alias]} "$OUT/constraint" >"$OUT/$alias-compile.json" ||
    die "the constraint benchmark failed"
done

python3 - "$OUT" "$MODELS" "$LEVELS" "$PASSES" <<'EOF' | tee "$OUT/summary.txt"
import json, statistics, sys
out, models, levels, passes = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4])

def rate(alias, server, s, c):
    return [json.load(open(f"{out}/{alias}-{server}-{s}-c{c}-p{p}.json"))["decode_tok_s_mean"]
            for p in range(1, passes + 1)]

goals = []
for alias in models:
    print(f"\n{alias}: decode tok/s per request (median of {passes} passes), JSON schema vs free text")
    print(f"{'streams':>7} | {'hearth free':>11} {'hearth json':>11} {'ratio':>6} | "
          f"{'llama free':>10} {'llama json':>10} {'ratio':>6} | hearth/llama json")
    for c in levels:
        hf, hj = statistics.median(rate(alias, "hearth", "free", c)), statistics.median(rate(alias, "hearth", "json", c))
        lf, lj = statistics.median(rate(alias, "llama-server", "free", c)), statistics.median(rate(alias, "llama-server", "json", c))
        # The ratio per pass, then the median: drift between passes cancels within a pass.
        ratios = [j / f for j, f in zip(rate(alias, "hearth", "json", c), rate(alias, "hearth", "free", c))]
        ratio = statistics.median(ratios)
        lratio = statistics.median([j / f for j, f in zip(rate(alias, "llama-server", "json", c), rate(alias, "llama-server", "free", c))])
        print(f"{c:>7} | {hf:>11.1f} {hj:>11.1f} {ratio:>5.2f}x | {lf:>10.1f} {lj:>10.1f} {lratio:>5.2f}x | {hj / lj:>5.2f}x")
        goals.append((f"{alias} c={c}: hearth JSON decode >= 0.95x free text "
                      f"(per pass: {', '.join(f'{r:.3f}' for r in ratios)})", ratio >= 0.95))
    comp = json.load(open(f"{out}/{alias}-compile.json"))
    ms = comp["compile_ms"]
    print(f"schema compile ({comp['schemas']} schemas x {comp['samples'] // comp['schemas']}): "
          f"p50 {ms['p50']:.2f} ms, p99 {ms['p99']:.2f} ms, max {ms['max']:.2f} ms; "
          f"token trie ready {comp['trie_ms']:.0f} ms after load")
    goals.append((f"{alias}: schema compile p99 {ms['p99']:.2f} ms < 50 ms", ms["p99"] < 50))

print("\ngoals (issue #30):")
for text, ok in goals:
    print(f"  [{'pass' if ok else 'FAIL'}] {text}")
EOF
log "results: $OUT"
