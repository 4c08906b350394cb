#!/usr/bin/env bash
# N-gram drafts on a verbatim copy, from the first request of a fresh server: the share of the
# answer's tokens that came from accepted drafts (timings.draft_n_accepted / completion
# tokens). Issue #31's goal: at least 80 % on every text.
#
# For each of three texts (a paragraph of minutes, a list of instructions, a product notice),
# a new `hearth serve` (its own HEARTH_HOME: no prompt cache on disk, no earlier requests to
# draft from) gets one request: "Repeat the following text exactly", temperature 0, streamed
# off, max_tokens 200. An answer that is not a copy (the model paraphrased, or stopped before
# half the text) is reported and not counted: the goal is about drafting, not about the
# model's obedience. A drafted token is
# only accepted when it equals what the model picks, so the text itself is the model's own.
#
# Usage: perf/drafts-copy.sh
# Environment: HEARTH_BENCH_THREADS (default 2), HEARTH_BENCH_MODEL (default: the default
#   model, from scripts/setup.sh), DRAFTS_COPY_HEARTH_BIN (a hearth binary to measure instead
#   of building this tree's).
# Only stdout carries the table; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "drafts-copy: $*" >&2; }
die() {
  echo "drafts-copy: error: $*" >&2
  exit 1
}
[ $# -eq 0 ] || die "no arguments expected (settings come from the environment)"
THREADS=${HEARTH_BENCH_THREADS:-2}
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "HEARTH_BENCH_THREADS=$THREADS: a whole number of at least 1 is needed"
for tool in cargo curl python3; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed"
done
if [ -n "${HEARTH_BENCH_MODEL:-}" ]; then
  MODEL=$HEARTH_BENCH_MODEL
else
  MODEL=$(scripts/setup.sh | tail -n 1)
fi
[ -f "$MODEL" ] || die "no model at $MODEL"
MODEL=$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")
if [ -n "${DRAFTS_COPY_HEARTH_BIN:-}" ]; then
  BIN=$DRAFTS_COPY_HEARTH_BIN
else
  log "building hearth (release)"
  cargo build --release --locked >&2
  BIN=$PWD/target/release/hearth
fi
[ -x "$BIN" ] || die "no hearth binary at $BIN"

WORK=$(mktemp -d)
PID=""
cleanup() {
  [ -z "$PID" ] || kill "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$((20000 + RANDOM % 20000))

python3 - "$BIN" "$MODEL" "$THREADS" "$WORK" "$PORT" <<'PY'
import difflib, json, os, subprocess, sys, time, urllib.request

bin_, model, threads, work, port = sys.argv[1:]
TEXTS = {
    "minutes": "The committee met on Tuesday to review the budget for the coming year. Members agreed "
               "that the library should stay open on Sundays, that the park benches need new paint, and "
               "that the bridge on Mill Street must be inspected before winter. The treasurer reported a "
               "surplus of twelve thousand dollars, which will go to the school lunch fund.",
    "instructions": "First, unplug the machine and let it cool for ten minutes. Second, remove the back "
                    "panel with a flat screwdriver. Third, lift out the filter and rinse it under warm "
                    "water until the water runs clear. Fourth, dry the filter completely before you put "
                    "it back, then close the panel and plug the machine in again.",
    "notice": "Starting on the first of March, all orders above fifty euros ship for free within the "
              "country. Orders placed before noon on a weekday leave our warehouse the same day. Returns "
              "are accepted for thirty days after delivery, provided the item is unused and in its "
              "original packaging.",
}

def log(msg):
    print(f"drafts-copy: {msg}", file=sys.stderr, flush=True)

rows = []
for name, text in TEXTS.items():
    home = os.path.join(work, name)
    os.makedirs(home)
    with open(os.path.join(home, "models.json"), "w") as f:
        json.dump({"smollm2-135m": {"path": model}}, f)
    env = {k: v for k, v in os.environ.items() if k not in ("HEARTH_API_KEY", "HEARTH_SPECULATIVE")}
    env["HEARTH_HOME"] = home
    log(f"{name}: a fresh server")
    server = subprocess.Popen([bin_, "serve", "--port", port, "--threads", threads, "--models", "smollm2-135m"],
                              env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(home, "log"), "w"))
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except Exception:
                if server.poll() is not None:
                    sys.exit(f"drafts-copy: the server exited; see {home}/log")
                time.sleep(0.1)
        body = {"model": "smollm2-135m", "temperature": 0, "max_tokens": 200,
                "messages": [{"role": "user", "content": "Repeat the following text exactly, word for word:\n\n" + text}]}
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        r = json.load(urllib.request.urlopen(req, timeout=600))
    finally:
        server.terminate()
        server.wait()
    answer = r["choices"][0]["message"]["content"]
    t = r.get("timings", {})
    completion = r["usage"]["completion_tokens"]
    accepted = t.get("draft_n_accepted", 0)
    # A copy: the answer's words are the text's (or, when the model stops early, the first
    # half of it or more), give or take a word or two (difflib's matching blocks, so one word
    # changed does not shift the rest).
    words_a, words_t = answer.split(), text.split()
    copy = (len(words_a) >= len(words_t) // 2 and
            difflib.SequenceMatcher(None, words_a, words_t[:len(words_a)]).ratio() >= 0.9)
    if not copy:
        log(f"{name}: not a copy: {answer[:160]!r}")
    rows.append((name, completion, t.get("draft_n", 0), accepted, accepted / completion if completion else 0.0, copy))

print(f"n-gram drafts on a verbatim copy, first request of a fresh server ({os.path.basename(model)}, {threads} threads)")
print()
print(f"{'text':<13} | {'tokens':>6} | {'drafted':>7} | {'accepted':>8} | {'share of answer':>15} | copy")
print("-" * 68)
for name, completion, drafted, accepted, share, copy in rows:
    print(f"{name:<13} | {completion:>6} | {drafted:>7} | {accepted:>8} | {100 * share:>14.0f}% | {'yes' if copy else 'no (not counted)'}")
counted = [r for r in rows if r[5]]
print()
if not counted:
    print("[n/a ] no answer was a copy")
else:
    worst = min(r[4] for r in counted)
    verdict = "PASS" if worst >= 0.8 else "FAIL"
    print(f"[{verdict}] drafts accepted for >= 80% of a verbatim copy's tokens from the first request: "
          f"lowest {100 * worst:.0f}% over {len(counted)} copies")
PY
