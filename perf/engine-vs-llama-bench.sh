#!/usr/bin/env bash
# hearth's engine next to llama.cpp's own `llama-bench`, on the same model and thread count.
#
# 1. Builds (once; cached under target/llama-ref/) `llama-bench` and `llama-server` from the
#    llama.cpp copy vendored in the llama-cpp-python sdist whose llama.cpp is nearest to the one
#    llama-cpp-sys-2 compiles into hearth (see REF_VERSION below).
# 2. Runs `llama-bench -p 512 -n 128` and `cargo bench --bench engine` (same model, same threads),
#    alternating them for BENCH_ROUNDS rounds to spread machine noise over both, and prints
#    pp512 / tg128 tokens per second of each and the ratio hearth / llama-bench.
#
# What is compared is the kernels: llama-bench decodes one token per step and prefills fresh
# prompts. hearth's engine bench runs with speculation off (`Speculative::Off`) and gives every
# pp512 repetition a prompt of its own, and this script REFUSES a hearth result that does not
# say so: one whose pp512 prompt came from the prompt cache (a cache hit once read 39,381 t/s,
# 124x llama-bench), or whose tg128 drafted a token (n-gram drafts, hearth's default, once read
# 220.5 t/s against llama-bench's 91.9, 2.40x: the text's own repetitions, not the kernels).
# The drafts-on decode figure is still measured (BENCH_TG_DRAFTS=1: a second engine with the
# default n-gram drafts runs tg128 again) and printed as its own row, "tg128, n-gram drafts on
# (not a kernel comparison)", with no llama-bench figure or ratio beside it.
#
# Usage: perf/engine-vs-llama-bench.sh [--build-only]
# Environment:
#   HEARTH_BENCH_MODEL     GGUF to run (default: the default model, from scripts/setup.sh)
#   HEARTH_BENCH_THREADS   CPU threads for both (default 2)
#   BENCH_REPS             repetitions per test and round (default 5, as llama-bench's -r)
#   BENCH_ROUNDS           alternating rounds of both programs (default 2)
#   BENCH_TG_DRAFTS        1 = also measure tg128 with n-gram drafts on, the extra row
#                          (default 1; 0 skips it)
#   LLAMA_CPP_PYTHON_VERSION  override the reference sdist version
# Only stdout carries the table; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { echo "bench: $*" >&2; }
die() {
  echo "bench: error: $*" >&2
  exit 1
}

BUILD_ONLY=0
case "${1:-}" in
  --build-only) BUILD_ONLY=1 ;;
  "") ;;
  *) die "unknown argument '$1' (usage: $0 [--build-only])" ;;
esac

# Which llama-cpp-python release to take llama.cpp from. llama-cpp-sys-2 0.1.161 vendors
# llama.cpp without git metadata or a build number, so it was dated by content: its ggml is
# 0.26.0 and it already has src/models/clef.cpp and LLAMA_SESSION_VERSION 11. The newest
# llama-cpp-python, 0.3.36 (llama.cpp@0c1e57098, ggml 0.25.3), lacks those, so the sys crate's
# copy is slightly newer than every llama-cpp-python release and 0.3.36 is the nearest one.
# Re-check when bumping llama-cpp-2 (the script prints both fingerprints and the file diff count).
REF_VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
THREADS=${HEARTH_BENCH_THREADS:-2}
REPS=${BENCH_REPS:-5}
ROUNDS=${BENCH_ROUNDS:-2}
TG_DRAFTS=${BENCH_TG_DRAFTS:-1}
case $TG_DRAFTS in
  0 | 1) ;;
  *) die "BENCH_TG_DRAFTS=$TG_DRAFTS: use 0 or 1" ;;
esac
JOBS=2
REF_DIR=$ROOT/target/llama-ref
SDIST_DIR=$REF_DIR/sdist
SRC=$REF_DIR/src-$REF_VERSION
BUILD=$REF_DIR/build-$REF_VERSION

for tool in cargo cmake python3 tar; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed (scripts/setup.sh installs what hearth needs)"
done

# --- the llama.cpp inside hearth ------------------------------------------------------------
sys_manifest=$(cargo metadata --format-version 1 --locked 2>/dev/null | python3 -c '
import json, sys
meta = json.load(sys.stdin)
pkgs = [p for p in meta["packages"] if p["name"] == "llama-cpp-sys-2"]
print(pkgs[0]["version"] + " " + pkgs[0]["manifest_path"] if pkgs else "")
') || true
[ -n "$sys_manifest" ] || die "cannot find llama-cpp-sys-2 with 'cargo metadata'"
SYS_VERSION=${sys_manifest%% *}
SYS_LLAMA=$(dirname "${sys_manifest#* }")/llama.cpp

# A llama.cpp tree's fingerprint: ggml version and the state-format versions in llama.h.
fingerprint() {
  local dir=$1 major minor patch session
  major=$(sed -n 's/^set(GGML_VERSION_MAJOR \([0-9]*\))/\1/p' "$dir/ggml/CMakeLists.txt")
  minor=$(sed -n 's/^set(GGML_VERSION_MINOR \([0-9]*\))/\1/p' "$dir/ggml/CMakeLists.txt")
  patch=$(sed -n 's/^set(GGML_VERSION_PATCH \([0-9]*\))/\1/p' "$dir/ggml/CMakeLists.txt")
  session=$(sed -n 's/^#define LLAMA_SESSION_VERSION \([0-9]*\).*/\1/p' "$dir/include/llama.h")
  echo "ggml $major.$minor.$patch, LLAMA_SESSION_VERSION $session"
}

# --- the reference llama.cpp: source -------------------------------------------------------
mkdir -p "$SDIST_DIR"
sdist=$SDIST_DIR/llama_cpp_python-$REF_VERSION.tar.gz
if [ ! -f "$sdist" ]; then
  log "downloading the llama-cpp-python $REF_VERSION sdist (~75 MB)"
  python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$SDIST_DIR" \
    "llama-cpp-python==$REF_VERSION" >&2 || die "pip could not download llama-cpp-python==$REF_VERSION"
  [ -f "$sdist" ] || die "pip saved no $sdist"
fi
if [ ! -f "$SRC/CMakeLists.txt" ]; then
  log "unpacking llama.cpp from $(basename "$sdist")"
  rm -rf "$SRC" "$SRC.partial"
  mkdir -p "$SRC.partial"
  tar -xzf "$sdist" -C "$SRC.partial" --strip-components=3 \
    "llama_cpp_python-$REF_VERSION/vendor/llama.cpp" ||
    die "no vendor/llama.cpp in $sdist"
  # The changelog names the llama.cpp commit each release vendors.
  tar -xzf "$sdist" -O "llama_cpp_python-$REF_VERSION/CHANGELOG.md" >"$SRC.partial/CHANGELOG.llama-cpp-python.md" || true
  mv "$SRC.partial" "$SRC"
fi
ref_commit=$(awk -v v="## [$REF_VERSION]" '
  $0 == v { inside = 1; next }
  inside && /^## \[/ { exit }
  inside && match($0, /llama\.cpp@[0-9a-f]+/) { print substr($0, RSTART + 10, RLENGTH - 10); exit }
' "$SRC/CHANGELOG.llama-cpp-python.md" 2>/dev/null || true)
n_diff=$( (diff -rq "$SYS_LLAMA/src" "$SRC/src" 2>/dev/null || true) | wc -l)
n_diff_ggml=$( (diff -rq "$SYS_LLAMA/ggml/src" "$SRC/ggml/src" 2>/dev/null || true) | wc -l)
log "hearth:    llama-cpp-sys-2 $SYS_VERSION, vendored llama.cpp ($(fingerprint "$SYS_LLAMA"); no commit id shipped)"
log "reference: llama-cpp-python $REF_VERSION, vendored llama.cpp@${ref_commit:-unknown} ($(fingerprint "$SRC"))"
log "           files differing: $n_diff under src/, $n_diff_ggml under ggml/src/"

# --- the reference llama.cpp: build ---------------------------------------------------------
# Built the way llama-cpp-sys-2's build.rs builds ggml for hearth (default features of
# llama-cpp-2, no RUSTFLAGS), so both run the same kernels:
#   * GGML_NATIVE=OFF: build.rs sets it whenever target-cpu is not `native`. ggml then turns on
#     SSE4.2, AVX, AVX2, BMI2, FMA and F16C by default (its INS_ENB rule) and leaves every AVX-512
#     flag OFF; build.rs adds no others (x86-64's default Rust target features name none of
#     them). They are spelled out below so a future ggml default cannot silently diverge.
#   * GGML_OPENMP=ON: llama-cpp-2's default features include `openmp`.
#   * Release, static libraries, the system's default compilers (cc/c++), as cmake-rs uses.
#   * GGML_LLAMAFILE and GGML_CPU_REPACK keep their (ON) defaults in both builds.
# llama.cpp's UI fetch and HTTPS support are off: llama-server is built for local benchmarks
# only, and the build must not touch the network. LLAMA_CURL no longer exists in this
# llama.cpp; it is passed anyway in case an older REF_VERSION still has it.
if [ ! -x "$BUILD/bin/llama-bench" ] || [ ! -x "$BUILD/bin/llama-server" ]; then
  log "building llama-bench and llama-server (-j $JOBS; takes a while; log: $BUILD/build.log)"
  mkdir -p "$BUILD"
  started=$(date +%s)
  if ! {
    cmake -S "$SRC" -B "$BUILD" \
      -DCMAKE_BUILD_TYPE=Release \
      -DBUILD_SHARED_LIBS=OFF \
      -DGGML_NATIVE=OFF \
      -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
      -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF \
      -DGGML_AVX_VNNI=OFF \
      -DGGML_OPENMP=ON \
      -DGGML_BLAS=OFF \
      -DLLAMA_CURL=OFF \
      -DLLAMA_OPENSSL=OFF \
      -DLLAMA_BUILD_UI=OFF \
      -DLLAMA_USE_PREBUILT_UI=OFF \
      -DLLAMA_BUILD_TESTS=OFF \
      -DLLAMA_BUILD_EXAMPLES=OFF &&
      cmake --build "$BUILD" --config Release -j "$JOBS" --target llama-bench llama-server
  } >"$BUILD/build.log" 2>&1; then
    tail -n 30 "$BUILD/build.log" >&2
    die "the reference build failed (full log: $BUILD/build.log)"
  fi
  echo $(($(date +%s) - started)) >"$BUILD/build-seconds"
  log "reference build took $(cat "$BUILD/build-seconds") s"
else
  log "reference build cached in $BUILD (it took $(cat "$BUILD/build-seconds" 2>/dev/null || echo '?') s)"
fi
LLAMA_BENCH=$BUILD/bin/llama-bench
if [ "$BUILD_ONLY" = 1 ]; then
  log "built $LLAMA_BENCH and $BUILD/bin/llama-server"
  exit 0
fi

# --- the model ------------------------------------------------------------------------------
if [ -n "${HEARTH_BENCH_MODEL:-}" ]; then
  MODEL=$HEARTH_BENCH_MODEL
else
  MODEL=$(scripts/setup.sh | tail -n 1)
fi
[ -f "$MODEL" ] || die "model not found: '$MODEL' (set HEARTH_BENCH_MODEL or run scripts/setup.sh)"
export HEARTH_BENCH_MODEL=$MODEL HEARTH_BENCH_THREADS=$THREADS BENCH_REPS=$REPS BENCH_TG_DRAFTS=$TG_DRAFTS

# --- run ------------------------------------------------------------------------------------
# Both programs spin-wait in OpenMP barriers, so anything else running on the machine skews
# (mostly tg128) badly; say so up front rather than after a confusing table.
load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
if awk -v l="$load" -v t="$THREADS" 'BEGIN { exit !(l > 0.5 * t) }'; then
  log "warning: load average is $load with $THREADS benchmark threads; figures will be noisy"
fi
log "building the hearth benchmark (release)"
cargo bench --locked --bench engine --no-run >&2 || die "cannot build the hearth benchmark"

OUT=$REF_DIR/runs/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
run_llama_bench() {
  log "round $1: llama-bench -m $(basename "$MODEL") -t $THREADS -p 512 -n 128 -r $REPS"
  "$LLAMA_BENCH" -m "$MODEL" -t "$THREADS" -p 512 -n 128 -r "$REPS" -o json \
    >"$OUT/llama-bench-$1.json" 2>"$OUT/llama-bench-$1.log" ||
    {
      tail -n 20 "$OUT/llama-bench-$1.log" >&2
      die "llama-bench failed"
    }
}
run_hearth() {
  log "round $1: cargo bench --bench engine (threads $THREADS, reps $REPS)"
  cargo bench --locked --quiet --bench engine >"$OUT/hearth-$1.out" 2>"$OUT/hearth-$1.log" ||
    {
      tail -n 20 "$OUT/hearth-$1.log" >&2
      die "cargo bench --bench engine failed"
    }
  grep '^{' "$OUT/hearth-$1.out" | tail -n 1 >"$OUT/hearth-$1.json"
  [ -s "$OUT/hearth-$1.json" ] || die "the hearth benchmark printed no JSON line (see $OUT/hearth-$1.out)"
}
for round in $(seq 1 "$ROUNDS"); do
  # Alternate who goes first, so drift in machine load does not favour either side.
  if [ $((round % 2)) = 1 ]; then
    run_llama_bench "$round"
    run_hearth "$round"
  else
    run_hearth "$round"
    run_llama_bench "$round"
  fi
done
log "raw results in $OUT"

# --- report ---------------------------------------------------------------------------------
python3 - "$OUT" "$ROUNDS" "$THREADS" "$REF_VERSION" "${ref_commit:-unknown}" "$SYS_VERSION" <<'PY'
import json, statistics, sys

out, rounds, threads, ref_version, ref_commit, sys_version = sys.argv[1:]
rounds = int(rounds)

def stats(samples):
    mean = statistics.fmean(samples)
    sd = statistics.stdev(samples) if len(samples) > 1 else 0.0
    return mean, sd

ref = {"pp512": [], "tg128": []}
ours = {"pp512": [], "tg128": []}
drafts_on = {"samples": [], "drafted": 0, "accepted": 0}
per_round = []
for r in range(1, rounds + 1):
    row = {}
    for entry in json.load(open(f"{out}/llama-bench-{r}.json")):
        if entry["n_prompt"] == 512 and entry["n_gen"] == 0:
            test = "pp512"
        elif entry["n_prompt"] == 0 and entry["n_gen"] == 128:
            test = "tg128"
        else:
            continue
        ref[test] += entry["samples_ts"]
        row[f"ref {test}"] = entry["avg_ts"]
    h = json.load(open(f"{out}/hearth-{r}.json"))
    # A pp512 prompt taken from the engine's prompt cache times a cache hit, not prefill.
    cached = h.get("pp512_cached_tokens_max")
    if cached is None or cached > 1:
        sys.exit(f"refusing round {r}: hearth's pp512 prompt came from the prompt cache "
                 f"({cached} cached tokens); the result would not measure prefill")
    # llama-bench decodes one token per step; a tg128 with drafted tokens times the text's own
    # repetitions (n-gram drafts), not the kernels.
    if h.get("speculative") != "off":
        sys.exit(f"refusing round {r}: hearth's engine bench ran with speculation "
                 f"{h.get('speculative')!r}, not 'off'; tg128 would not compare kernels")
    drafted = h.get("tg128_draft_tokens_max")
    if drafted is None:
        sys.exit(f"refusing round {r}: hearth's engine bench did not say how many tokens tg128 "
                 "drafted (no tg128_draft_tokens_max); it may have timed speculation, not decoding")
    if drafted > 0:
        sys.exit(f"refusing round {r}: hearth's tg128 drafted tokens ({drafted} in one "
                 f"repetition); the result would time speculation, not decoding")
    if h.get("threads") != int(threads):
        sys.exit(f"hearth ran with {h.get('threads')} threads, llama-bench with {threads}")
    for test in ours:
        ours[test] += h[test]["samples"]
        row[f"hearth {test}"] = h[test]["mean"]
    extra = h.get("tg128_drafts_on")
    if extra:
        drafts_on["samples"] += extra["samples"]
        drafts_on["drafted"] += extra["draft_tokens"]
        drafts_on["accepted"] += extra["draft_accepted"]
        row["hearth tg128 drafts on"] = extra["mean"]
    per_round.append(row)

print(f"pp512 / tg128 tokens per second, {threads} threads, "
      f"{rounds} alternating rounds x {len(ref['pp512']) // rounds} reps each (mean ± stddev)")
print(f"llama-bench: llama.cpp@{ref_commit} from llama-cpp-python {ref_version}; "
      f"hearth: llama-cpp-sys-2 {sys_version}")
print("hearth: speculation off (one token per step, as llama-bench); no pp512 prompt from the cache")
print()
extra_label = "tg128, n-gram drafts on (not a kernel comparison)"
width = len(extra_label) if drafts_on["samples"] else 6
header = f"{'test':<{width}} | {'llama-bench t/s':>17} | {'hearth t/s':>17} | {'ratio':>5}"
print(header)
print("-" * len(header))
for test in ("pp512", "tg128"):
    rm, rs = stats(ref[test])
    hm, hs = stats(ours[test])
    print(f"{test:<{width}} | {rm:9.1f} ± {rs:5.1f} | {hm:9.1f} ± {hs:5.1f} | {hm / rm:5.2f}")
if drafts_on["samples"]:
    dm, ds = stats(drafts_on["samples"])
    print("-" * len(header))
    print(f"{extra_label:<{width}} | {'-':>17} | {dm:9.1f} ± {ds:5.1f} | {'-':>5}")
    accepted = (f"{100 * drafts_on['accepted'] / drafts_on['drafted']:.0f}%"
                if drafts_on["drafted"] else "n/a")
    print()
    print(f"The last row is hearth's default decoding (n-gram drafts from the text's own repetitions; "
          f"{drafts_on['drafted']} tokens drafted, {accepted} accepted), {dm / stats(ours['tg128'])[0]:.2f}x "
          "hearth's one-token-per-step tg128. llama-bench has no such mode, so it has no ratio.")
print()
for i, row in enumerate(per_round, 1):
    cells = "  ".join(f"{k} {v:.1f}" for k, v in row.items())
    print(f"round {i}: {cells}")
PY
