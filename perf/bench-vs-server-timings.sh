#!/usr/bin/env bash
# Does `hearth bench` report what the servers themselves measured? Runs the same benchmark of
# the default model against llama.cpp's `llama-server` (as an external endpoint) and against
# hearth's own in-process server, then compares, request by request, what the client measured
# with the `timings` each server sent back:
#   TTFT     client: send → first content token;   server: queue + prompt processing
#            (hearth: timings.ttft_ms; llama-server: timings.prompt_ms)
#   decode   client: (tokens − 1) / (last chunk − first token);  server: predicted_per_second
#   tokens   usage.completion_tokens against timings.predicted_n
# The client's figures include the HTTP and SSE overhead on loopback, so they should sit a
# little above the servers' own, within a few percent.
#
# Usage: perf/bench-vs-server-timings.sh
# Environment:
#   HEARTH_BENCH_MODEL          GGUF (default: the default model, from scripts/setup.sh)
#   HEARTH_BENCH_THREADS        CPU threads for both servers (default 2)
#   TIMINGS_BENCH_CONCURRENCY   levels (default 1,4)
#   TIMINGS_BENCH_MAX_TOKENS    tokens per answer, end-of-sequence ignored (default 128)
#   LLAMA_CPP_PYTHON_VERSION    reference llama.cpp (see perf/engine-vs-llama-bench.sh)
# Only stdout carries the table; progress goes to stderr; run folders stay under
# target/timings-bench/<timestamp>/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { echo "timings-bench: $*" >&2; }
die() {
  echo "timings-bench: error: $*" >&2
  exit 1
}

THREADS=${HEARTH_BENCH_THREADS:-2}
LEVELS=${TIMINGS_BENCH_CONCURRENCY:-1,4}
MAX_TOKENS=${TIMINGS_BENCH_MAX_TOKENS:-128}
REF_VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
ALIAS=smollm2-135m

LLAMA_SERVER=$ROOT/target/llama-ref/build-$REF_VERSION/bin/llama-server
if [ ! -x "$LLAMA_SERVER" ]; then
  log "no reference llama-server yet: building it with perf/engine-vs-llama-bench.sh --build-only"
  perf/engine-vs-llama-bench.sh --build-only
fi
[ -x "$LLAMA_SERVER" ] || die "no llama-server at $LLAMA_SERVER"

MODEL=${HEARTH_BENCH_MODEL:-$(scripts/setup.sh | tail -n 1)}
[ -f "$MODEL" ] || die "model not found: $MODEL"
MODEL=$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")

log "building hearth (release)"
cargo build --release --locked >&2
OUT=$ROOT/target/timings-bench/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
cp target/release/hearth "$OUT/hearth-bin"
HOME_DIR=$OUT/home
mkdir -p "$HOME_DIR"
python3 -c 'import json, sys; print(json.dumps({sys.argv[1]: {"path": sys.argv[2]}}))' \
  "$ALIAS" "$MODEL" >"$HOME_DIR/models.json"

LLAMA_PID=""
cleanup() {
  [ -z "$LLAMA_PID" ] || kill "$LLAMA_PID" 2>/dev/null || true
  rm -f "$OUT/hearth-bin"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log "starting llama-server on port $PORT (log: $OUT/llama-server.log)"
"$LLAMA_SERVER" -m "$MODEL" -t "$THREADS" -tb "$THREADS" -np 8 -c 8192 --metrics \
  --host 127.0.0.1 --port "$PORT" --alias "$ALIAS" >"$OUT/llama-server.log" 2>&1 &
LLAMA_PID=$!
for _ in $(seq 1 600); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health")" = 200 ] && break
  kill -0 "$LLAMA_PID" 2>/dev/null || die "llama-server died (see $OUT/llama-server.log)"
  sleep 0.2
done

common=(--concurrency "$LEVELS" --rounds 2 --max-tokens "$MAX_TOKENS" --ignore-eos)
run_bench() { # label, extra args...
  local label=$1
  shift
  log "hearth bench against $label"
  env -u HEARTH_ENDPOINT -u FOUNDRY_LOCAL_ENDPOINT -u BENCH_MODELS -u HEARTH_DB_URL \
    HEARTH_HOME="$HOME_DIR" HEARTH_THREADS="$THREADS" \
    "$OUT/hearth-bin" bench "${common[@]}" --out "$OUT/$label" "$@" >"$OUT/$label.table" 2>"$OUT/$label.log" ||
    die "hearth bench against $label failed (see $OUT/$label.log)"
}
run_bench llama-server --endpoint "http://127.0.0.1:$PORT" --models "$ALIAS" --pid "$LLAMA_PID"
kill "$LLAMA_PID"
wait "$LLAMA_PID" 2>/dev/null || true
LLAMA_PID=""
run_bench hearth --models "$ALIAS" --ctx 1024

python3 - "$OUT" "$HOME_DIR/history.db" <<'PY'
import json, sqlite3, statistics, sys

out, db = sys.argv[1:]
con = sqlite3.connect(db)
print(f"hearth bench against the servers' own timings: {json.load(open(out + '/hearth/report.json'))['environment']['cpu_model']}")
print()
header = (f"{'server':<13}|{'level':>6} |{'n':>4} |{'TTFT client':>12} |{'server':>8} |{'ratio':>6} |"
          f"{'decode client':>14} |{'server':>8} |{'ratio':>6} | tokens agree")
print(header)
print("-" * len(header))
for label in ("llama-server", "hearth"):
    report = json.load(open(f"{out}/{label}/report.json"))
    run_id = report["run"]["id"]
    rows = con.execute(
        "SELECT level, sent_ms, first_token_ms, chunk_ms, completion_tokens, server_timings "
        "FROM requests WHERE run_id = ? AND round > 0 AND status = 'ok' ORDER BY level, seq",
        (run_id,)).fetchall()
    by_level = {}
    for level, sent, first, chunks, tokens, timings in rows:
        by_level.setdefault(level, []).append((sent, first, json.loads(chunks), tokens, json.loads(timings or "null")))
    for level, reqs in by_level.items():
        ct, st, cd, sd, agree = [], [], [], [], 0
        for sent, first, chunks, tokens, t in reqs:
            if not t:
                continue
            ct.append(first - sent)
            st.append(t["ttft_ms"] if "ttft_ms" in t else t["prompt_ms"])
            if tokens and tokens > 1 and chunks[-1] > first:
                cd.append((tokens - 1) / ((chunks[-1] - first) / 1000))
                sd.append(t["predicted_per_second"])
            agree += int(tokens == t.get("predicted_n"))
        if not ct:
            print(f"{label:<13}|{level:>6} | no server timings")
            continue
        mct, mst, mcd, msd = map(statistics.fmean, (ct, st, cd, sd))
        print(f"{label:<13}|{level:>6} |{len(ct):>4} |{mct:>9.1f} ms |{mst:>5.1f} ms |{mct / mst:>6.3f} |"
              f"{mcd:>10.1f} t/s |{msd:>8.1f} |{mcd / msd:>6.3f} | {agree}/{len(reqs)}")
PY
log "run folders: $OUT/llama-server, $OUT/hearth"
