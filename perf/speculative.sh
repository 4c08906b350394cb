#!/usr/bin/env bash
# N-gram speculative decoding, measured: decode speed of the default model on the built-in
# `summarize` prompt set (source notes in the prompt), same client (`hearth bench`), same
# threads, at concurrency 1 and 8, for
#   hearth --speculative off       hearth's engine, one token per sequence and step
#   hearth --speculative ngram     hearth's n-gram drafts (the default)
#   llama-server                   llama.cpp's server, no speculation
#   llama-server ngram-mod         --spec-type ngram-mod
#   llama-server ngram-simple      --spec-type ngram-simple
# Each level runs one warm-up round and BENCH_ROUNDS timed rounds of the same prompts, so the
# timed rounds are repeats (a server that remembers earlier requests, as hearth and ngram-mod
# do, drafts them from memory); the warm-up round of concurrency 1 is the first time every
# prompt is seen and is reported apart as "first pass".
# Then the plain prompt set (`default`): per prompt, hearth with drafts against without (the
# goal: none more than 3 % slower), and how many greedy answers differ with drafts on.
#
# decode tok/s = the client's per-request (completion tokens − 1) / (last chunk − first token),
# median over requests; ratios are against hearth --speculative off in the same run.
#
# Usage: perf/speculative.sh
# Environment: HEARTH_BENCH_THREADS (default 2), BENCH_ROUNDS (default 2),
#   BENCH_MAX_TOKENS (default 256), LLAMA_CPP_PYTHON_VERSION (see perf/engine-vs-llama-bench.sh).
# Only stdout carries the tables; progress goes to stderr; runs stay under
# target/speculative-bench/<timestamp>/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
log() { echo "speculative-bench: $*" >&2; }
die() {
  echo "speculative-bench: error: $*" >&2
  exit 1
}

THREADS=${HEARTH_BENCH_THREADS:-2}
ROUNDS=${BENCH_ROUNDS:-2}
MAX_TOKENS=${BENCH_MAX_TOKENS:-256}
REF_VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
ALIAS=smollm2-135m

LLAMA_SERVER=$ROOT/target/llama-ref/build-$REF_VERSION/bin/llama-server
if [ ! -x "$LLAMA_SERVER" ]; then
  log "no reference llama-server yet: building it with perf/engine-vs-llama-bench.sh --build-only"
  perf/engine-vs-llama-bench.sh --build-only
fi
[ -x "$LLAMA_SERVER" ] || die "no llama-server at $LLAMA_SERVER"
MODEL=$(scripts/setup.sh | tail -n 1)
MODEL=$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")

log "building hearth (release)"
cargo build --release --locked >&2
OUT=$ROOT/target/speculative-bench/$(date +%Y%m%d-%H%M%S)
HOME_DIR=$OUT/home
mkdir -p "$HOME_DIR"
cp target/release/hearth "$OUT/hearth-bin"
python3 -c 'import json, sys; print(json.dumps({sys.argv[1]: {"path": sys.argv[2]}}))' \
  "$ALIAS" "$MODEL" >"$HOME_DIR/models.json"

LLAMA_PID=""
cleanup() {
  [ -z "$LLAMA_PID" ] || kill "$LLAMA_PID" 2>/dev/null || true
  rm -f "$OUT/hearth-bin"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

common=(--prompt-set summarize --concurrency 1,8 --warmup 1 --rounds "$ROUNDS" --max-tokens "$MAX_TOKENS")
bench() { # label, extra args...
  local label=$1
  shift
  log "hearth bench: $label"
  env -u HEARTH_ENDPOINT -u FOUNDRY_LOCAL_ENDPOINT -u BENCH_MODELS -u HEARTH_DB_URL -u HEARTH_SPECULATIVE \
    HEARTH_HOME="$HOME_DIR" HEARTH_THREADS="$THREADS" \
    "$OUT/hearth-bin" bench --out "$OUT/$label" "$@" >"$OUT/$label.table" 2>"$OUT/$label.log" ||
    die "hearth bench $label failed (see $OUT/$label.log)"
}

llama_server() { # label, extra llama-server args...
  local label=$1
  shift
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  log "starting llama-server $label on port $port"
  "$LLAMA_SERVER" -m "$MODEL" -t "$THREADS" -tb "$THREADS" -np 8 -c 32768 --metrics \
    --host 127.0.0.1 --port "$port" --alias "$ALIAS" "$@" >"$OUT/$label.server.log" 2>&1 &
  LLAMA_PID=$!
  for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ] && break
    kill -0 "$LLAMA_PID" 2>/dev/null || die "llama-server died (see $OUT/$label.server.log)"
    sleep 0.2
  done
  bench "$label" "${common[@]}" --endpoint "http://127.0.0.1:$port" --models "$ALIAS" --pid "$LLAMA_PID"
  kill "$LLAMA_PID"
  wait "$LLAMA_PID" 2>/dev/null || true
  LLAMA_PID=""
}

bench hearth "${common[@]}" --models "$ALIAS" --speculative off,ngram --ctx 4096
llama_server llama-server
llama_server llama-server-ngram-mod --spec-type ngram-mod
llama_server llama-server-ngram-simple --spec-type ngram-simple
bench plain --prompt-set default --concurrency 1 --warmup 1 --rounds "$ROUNDS" --max-tokens "$MAX_TOKENS" \
  --models "$ALIAS" --speculative off,ngram

python3 - "$OUT" "$HOME_DIR/history.db" <<'PY'
import json, sqlite3, statistics, sys

out, db = sys.argv[1:]
con = sqlite3.connect(db)

def rows(label, model=None, counted=True):
    run_id = json.load(open(f"{out}/{label}/report.json"))["run"]["id"]
    q = ("SELECT model, level, round, prompt_id, first_token_ms, chunk_ms, completion_tokens, "
         "server_timings, output FROM requests WHERE run_id = ? AND status = 'ok'")
    for m, level, rnd, pid, first, chunks, tokens, timings, output in con.execute(q, (run_id,)):
        if model and m != model:
            continue
        if counted != (rnd > 0):
            continue
        chunks = json.loads(chunks)
        tps = None
        if tokens and tokens > 1 and chunks and chunks[-1] > first:
            tps = (tokens - 1) / ((chunks[-1] - first) / 1000)
        t = json.loads(timings or "null") or {}
        yield dict(level=level, prompt=pid, round=rnd, tps=tps, tokens=tokens or 0,
                   drafted=t.get("draft_n") or 0, accepted=t.get("draft_n_accepted") or 0,
                   output=output)

def figures(rs):
    tps = [r["tps"] for r in rs if r["tps"]]
    drafted = sum(r["drafted"] for r in rs)
    acc = sum(r["accepted"] for r in rs)
    return (statistics.median(tps) if tps else None, len(tps),
            f"{100 * acc / drafted:.0f}% of {drafted}" if drafted else "—")

configs = [
    ("hearth off", "hearth", "smollm2-135m [spec=off]"),
    ("hearth ngram", "hearth", "smollm2-135m [spec=ngram]"),
    ("llama-server", "llama-server", None),
    ("llama-server ngram-mod", "llama-server-ngram-mod", None),
    ("llama-server ngram-simple", "llama-server-ngram-simple", None),
]
report = json.load(open(f"{out}/hearth/report.json"))
print(f"Speculative decoding, default model, {report['environment'].get('cpu_model', '?')}, "
      f"summarize set, timed rounds = repeats of the warm-up round")
print()
head = f"{'server':<27}|{'level':>6} |{'n':>4} |{'decode t/s p50':>15} |{'× hearth off':>13} |{'× best llama ngram':>19} | drafts accepted"
print(head)
print("-" * len(head))
table = {}
for name, label, model in configs:
    for level in ("c=1", "c=8"):
        rs = [r for r in rows(label, model) if r["level"] == level]
        table[(name, level)] = figures(rs)
for level in ("c=1", "c=8"):
    base = table[("hearth off", level)][0]
    best = max((table[(n, level)][0] or 0) for n in ("llama-server ngram-mod", "llama-server ngram-simple"))
    for name, _, _ in configs:
        tps, n, drafts = table[(name, level)]
        if tps is None:
            print(f"{name:<27}|{level:>6} | no data")
            continue
        r1 = f"{tps / base:.2f}" if base else "—"
        r2 = f"{tps / best:.2f}" if best else "—"
        print(f"{name:<27}|{level:>6} |{n:>4} |{tps:>15.1f} |{r1:>13} |{r2:>19} | {drafts}")
print()
print("First pass (warm-up round at c=1: every prompt seen for the first time):")
cold = {}
for name, label, model in configs:
    rs = [r for r in rows(label, model, counted=False) if r["level"] == "c=1"]
    cold[name] = figures(rs)
base = cold["hearth off"][0]
best = max((cold[n][0] or 0) for n in ("llama-server ngram-mod", "llama-server ngram-simple"))
for name, _, _ in configs:
    tps, n, drafts = cold[name]
    if tps is None:
        continue
    print(f"  {name:<27} {tps:7.1f} t/s  × hearth off {tps / base:.2f}  × best llama ngram {tps / best:.2f}  drafts {drafts}")

def same_answers(label, a, b):
    ra = {(r["level"], r["round"], r["prompt"]): r["output"] for c in (True, False) for r in rows(label, a, c)}
    rb = {(r["level"], r["round"], r["prompt"]): r["output"] for c in (True, False) for r in rows(label, b, c)}
    keys = sorted(set(ra) & set(rb))
    return sum(ra[k] == rb[k] for k in keys), len(keys)

def answers(label, model=None):
    return {(r["level"], r["round"], r["prompt"]): r["output"]
            for c in (True, False) for r in rows(label, model, c)}

print()
for label, a, b in (("hearth", "smollm2-135m [spec=off]", "smollm2-135m [spec=ngram]"),
                    ("plain", "smollm2-135m [spec=off]", "smollm2-135m [spec=ngram]")):
    same, total = same_answers(label, a, b)
    print(f"greedy answers identical with drafts on and off ({label} run): {same}/{total}")
plain = answers("llama-server")
for label in ("llama-server-ngram-mod", "llama-server-ngram-simple"):
    other = answers(label)
    keys = sorted(set(plain) & set(other))
    print(f"greedy answers identical, llama-server plain and {label[13:]}: "
          f"{sum(plain[k] == other[k] for k in keys)}/{len(keys)}")
print()
print("Plain prompt set (default), c=1, decode t/s p50 per prompt (timed rounds):")
off = {}
on = {}
for r in rows("plain", "smollm2-135m [spec=off]"):
    off.setdefault(r["prompt"], []).append(r["tps"])
for r in rows("plain", "smollm2-135m [spec=ngram]"):
    on.setdefault(r["prompt"], []).append(r)
worst = None
for pid in sorted(off):
    a = statistics.median(x for x in off[pid] if x)
    b = statistics.median(r["tps"] for r in on[pid] if r["tps"])
    drafted = sum(r["drafted"] for r in on[pid])
    acc = sum(r["accepted"] for r in on[pid])
    ratio = b / a
    worst = ratio if worst is None else min(worst, ratio)
    print(f"  {pid:<18} off {a:6.1f}  ngram {b:6.1f}  × {ratio:.3f}  drafted {drafted}, accepted {acc}")
print(f"  slowest prompt with drafts: × {worst:.3f} (goal ≥ 0.97)")
PY
log "runs: $OUT"
