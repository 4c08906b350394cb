#!/usr/bin/env bash
# The GPU proof in one command, on a machine with an NVIDIA GPU and no Rust or network.
#
# Runs the kit perf/gpu/build-cuda.sh packed into target/gpu-kit/carry (hearth and llama-bench
# with CUDA, linked against one llama.cpp build) within a hard budget it enforces itself:
# 1. the machine: nvidia-smi, `hearth devices`, the libraries the binaries resolve;
# 2. shape models made on the spot (`hearth model synth`: nothing to carry), ~0.5B, ~1.5B, 7B
#    and the default model's twin;
# 3. llama-bench on the GPU (-ngl 99) over every shape file: the same-kernels anchor;
# 4. `hearth bench --gpu-layers all,0` over them at concurrency 1, 8 and 32 with fixed output
#    lengths (shape models decode to --max-tokens); every GPU row first, so a cut run keeps
#    them; stopped with Ctrl-C (SIGINT) when the budget runs out, which keeps what finished;
# 5. llama-bench on the CPU (-ngl 0 -dev none) over the shapes that still fit the budget;
# 6. the reports, `hearth runs show --json` and summary.md (hearth against llama-bench).
# Output (at most 8 files, flat): summary.md, log.txt, llama-bench.jsonl, report.md,
# report.html, report.json, report.csv, runs.json. Partial results are written as they come.
# Writes nothing outside the repository, OUT_DIR and /tmp; needs no root.
#
# Usage: perf/gpu/device.sh OUT_DIR [--rehearsal]
#   --rehearsal  the same steps on a CPU machine with the CPU kit (build-cuda.sh --rehearsal):
#                no nvidia-smi, --gpu-layers 0 only, the default model's twin only, short
#                answers. Proves the route and the script still work after a change.
# Environment:
#   HEARTH_GPU_BUDGET_S   seconds for the whole job (default 480; rehearsal 240)
#   SHAPES                shape models to make (default: qwen2.5-0.5b qwen2.5-1.5b mistral-7b
#                         smollm2-135m; rehearsal: smollm2-135m)
#   THREADS               CPU threads (default: the number of cores)
#   HEARTH_GPU_KIT        the kit's folder (default target/gpu-kit/carry)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

OUT=${1:-}
MODE=gpu
[ "${2:-}" = "--rehearsal" ] && MODE=rehearsal
if [ -z "$OUT" ] || [ "${OUT#-}" != "$OUT" ]; then
  echo "usage: $0 OUT_DIR [--rehearsal]" >&2
  exit 2
fi
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
T0=$(date +%s)

if [ "$MODE" = gpu ]; then
  BUDGET=${HEARTH_GPU_BUDGET_S:-480}
  SHAPES=${SHAPES:-qwen2.5-0.5b qwen2.5-1.5b mistral-7b smollm2-135m}
  LAYERS=all,0
  MAX_TOKENS=128
  PP=512 TG=128 REPS=3
else
  BUDGET=${HEARTH_GPU_BUDGET_S:-240}
  SHAPES=${SHAPES:-smollm2-135m}
  LAYERS=0
  MAX_TOKENS=16
  PP=64 TG=16 REPS=1
fi
THREADS=${THREADS:-$(nproc)}
# Seconds kept back at the end for the reports and the summary.
RESERVE=25

ARCHIVE=${HEARTH_GPU_KIT:-$ROOT/target/gpu-kit/carry}/kit.tar.xz
WORK=$(mktemp -d /tmp/hearth-device.XXXXXX)
KIT=$WORK/kit
HEARTH=$KIT/bin/hearth
LLAMA_BENCH=$KIT/bin/llama-bench
export HEARTH_HOME=$WORK/home
export TMPDIR=$WORK/tmp
mkdir -p "$HEARTH_HOME" "$TMPDIR"
SUMMARY=$OUT/summary.md
RESULTS=$OUT/llama-bench.jsonl
: >"$RESULTS"

exec > >(tee -a "$OUT/log.txt") 2>&1

left() { echo $((BUDGET - ($(date +%s) - T0))); }
log() { echo "[device.sh $(($(date +%s) - T0))s] $*"; }
section() { printf '\n## %s\n\n' "$1" >>"$SUMMARY"; }
code() {
  {
    echo '```'
    cat
    echo '```'
  } >>"$SUMMARY"
}
# Runs a step within what is left of the budget (less the reserve), at most $1 seconds.
# SIGINT first (hearth keeps what finished), a kill 20 s later.
step() {
  local cap=$1 t
  shift
  t=$(left)
  t=$((t - RESERVE))
  [ "$t" -gt "$cap" ] && t=$cap
  if [ "$t" -lt 5 ]; then
    log "skipped (budget spent): $*"
    return 124
  fi
  timeout -s INT -k 20 "$t" "$@"
}

{
  echo "# hearth on $(if [ "$MODE" = gpu ]; then echo "a GPU"; else echo "the CPU (rehearsal)"; fi)"
  echo
  echo "Started $(date -u +%Y-%m-%dT%H:%M:%SZ); budget ${BUDGET}s; $(nproc) cores; threads $THREADS."
} >"$SUMMARY"

# --- 1. the machine --------------------------------------------------------------------------
[ -f "$ARCHIVE" ] || {
  log "no kit at $ARCHIVE: run perf/gpu/build-cuda.sh (or --rehearsal) first, and carry target/gpu-kit/carry"
  exit 1
}
mkdir -p "$KIT"
# xz where the image has it, else Python's lzma (both read the 256 MiB dictionary).
if command -v xz >/dev/null; then
  xz -dc "$ARCHIVE" | tar -xf - -C "$KIT"
else
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$ARCHIVE" | tar -xf - -C "$KIT"
fi
[ -x "$HEARTH" ] && [ -x "$LLAMA_BENCH" ] || {
  log "the kit at $ARCHIVE did not unpack"
  exit 1
}
log "kit unpacked ($(du -sh "$KIT" | cut -f1))"
export LD_LIBRARY_PATH=$KIT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ "$MODE" = gpu ]; then
  # cuBLAS 13 from the machine's CUDA toolkit or PyTorch's wheels (the kit does not carry it).
  cublas=$(
    {
      ldconfig -p 2>/dev/null | awk '/libcublas\.so\.13/ { print $NF }'
      ls /usr/local/cuda*/lib64/libcublas.so.13 /usr/local/cuda*/targets/x86_64-linux/lib/libcublas.so.13 2>/dev/null
      python3 - 2>/dev/null <<'EOF'
import glob, os, site, sys
for base in site.getsitepackages() + [p for p in sys.path if "site-packages" in p]:
    for f in glob.glob(os.path.join(base, "nvidia", "*", "lib", "libcublas.so.13")):
        print(f)
EOF
    } | head -1
  )
  if [ -n "$cublas" ]; then
    export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$(dirname "$cublas")
  fi
  log "cuBLAS: ${cublas:-not found}"
fi
section "Machine"
{
  uname -srm
  grep -m1 'model name' /proc/cpuinfo
  free -g | head -2
  if [ "$MODE" = gpu ]; then nvidia-smi 2>&1 || echo "nvidia-smi failed"; fi
  echo "ldd hearth:"
  ldd "$HEARTH" 2>&1 | grep -E 'cuda|cublas|gomp|not found' || true
  echo "ldd llama-bench:"
  ldd "$LLAMA_BENCH" 2>&1 | grep -E 'cuda|cublas|ssl|not found' || true
  cat "$KIT/MANIFEST" 2>/dev/null | head -3
} 2>&1 | tee /dev/stderr | code
if ldd "$HEARTH" "$LLAMA_BENCH" | grep -q 'not found'; then
  log "a library the kit needs is missing (see above); stopping"
  exit 1
fi
section "hearth devices"
"$HEARTH" devices 2>&1 | tee /dev/stderr | code

# --- 2. shape models ---------------------------------------------------------------------------
models=()
files=()
for alias in $SHAPES; do
  log "making $alias~shape"
  if step 120 "$HEARTH" model synth "$alias" >"$WORK/synth.log" 2>&1; then
    path=$("$HEARTH" model info "$alias~shape" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["path"])')
    models+=("$alias~shape")
    files+=("$path")
    log "  $path ($(du -h "$path" | cut -f1))"
  else
    log "  could not make $alias~shape: $(tail -n 3 "$WORK/synth.log")"
  fi
done
section "Models"
for i in "${!models[@]}"; do
  echo "- ${models[$i]}: $(du -h "${files[$i]}" | cut -f1) (random weights: speed only)" >>"$SUMMARY"
done
[ "${#models[@]}" -gt 0 ] || {
  log "no model could be made"
  exit 1
}

# --- 3. / 5. llama-bench: one JSON line per test -------------------------------------------------
anchor() {
  local ngl=$1 file=$2 alias=$3 extra=()
  [ "$ngl" = 0 ] && extra=(-dev none)
  log "llama-bench -ngl $ngl on $alias"
  step 120 "$LLAMA_BENCH" -m "$file" -ngl "$ngl" "${extra[@]}" -t "$THREADS" -p "$PP" -n "$TG" \
    -r "$REPS" -o jsonl 2>"$WORK/llama-bench.err" |
    python3 -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        d = json.loads(line)
        d["hearth_alias"] = sys.argv[1]
        print(json.dumps(d))' "$alias" >>"$RESULTS" || log "  llama-bench stopped: $(tail -n 2 "$WORK/llama-bench.err")"
}
if [ "$MODE" = gpu ]; then
  for i in "${!models[@]}"; do anchor 99 "${files[$i]}" "${models[$i]}"; done
fi

# --- 4. hearth bench -------------------------------------------------------------------------------
models_csv=$(
  IFS=,
  echo "${models[*]}"
)
log "hearth bench --models $models_csv --gpu-layers $LAYERS --concurrency 1,8,32"
# The CPU anchors (step 5) need about a minute after the bench: leave it, when there is time.
bench_cap=$(($(left) - RESERVE - 60))
[ "$bench_cap" -lt 60 ] && bench_cap=60
step "$bench_cap" "$HEARTH" bench --models "$models_csv" --gpu-layers "$LAYERS" \
  --concurrency 1,8,32 --max-tokens "$MAX_TOKENS" --rounds 1 --warmup 1 --ctx 1024 \
  --threads "$THREADS" --speculative off --out "$WORK/run" >"$WORK/bench.txt"
log "hearth bench exit code $?"
for f in report.md report.html report.json report.csv; do
  [ -f "$WORK/run/$f" ] && cp "$WORK/run/$f" "$OUT/"
done
section "hearth bench (terminal table)"
code <"$WORK/bench.txt"

# --- 5. llama-bench on the CPU, while the budget lasts -----------------------------------------
for i in "${!models[@]}"; do
  case "${models[$i]}" in mistral-7b~shape) continue ;; esac # minutes per test on a CPU
  [ "$(left)" -gt $((RESERVE + 30)) ] || break
  anchor 0 "${files[$i]}" "${models[$i]}"
done

# --- 6. what comes back ---------------------------------------------------------------------------
"$HEARTH" runs show latest --json >"$OUT/runs.json" 2>"$WORK/runs.err" || log "runs show: $(cat "$WORK/runs.err")"
section "hearth against llama-bench (same llama.cpp build, same files)"
python3 - "$OUT/report.json" "$RESULTS" "$LAYERS" >>"$SUMMARY" 2>&1 <<'EOF'
import json, sys

report_path, anchors_path = sys.argv[1], sys.argv[2]
anchors = {}
for line in open(anchors_path):
    d = json.loads(line)
    gpu = d.get("n_gpu_layers", 0) > 0
    test = "pp" if d.get("n_prompt", 0) > 0 else "tg"
    anchors[(d["hearth_alias"], gpu, test)] = d.get("avg_ts")
try:
    report = json.load(open(report_path))
except Exception as e:
    report = {"levels": []}
    print(f"(no report.json: {e})\n")

def split(name):
    # "alias [gpu=all]"; without a label the run had one setting: LAYERS.
    base, _, label = name.partition(" [")
    setting = label.split("gpu=")[1].split()[0].rstrip("]") if "gpu=" in label else sys.argv[3]
    return base, setting != "0"

print("| model | offload | level | hearth out tok/s (all requests) | hearth decode tok/s, median per request | hearth TTFT p50 ms | llama-bench tg tok/s | decode ratio | llama-bench pp tok/s | GPU mem peak | GPU util mean | GPU power mean |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for l in report["levels"]:
    alias, gpu = split(l["model"])
    dec = (l.get("per_request_decode_throughput") or {}).get("median")
    # The anchor is one stream, like c=1: shown on that row only.
    first = l["level"] == "c=1"
    tg = anchors.get((alias, gpu, "tg")) if first else None
    pp = anchors.get((alias, gpu, "pp")) if first else None
    g = (l.get("resources") or {}).get("gpu")
    ratio = f"{dec / tg:.2f}" if dec and tg else ""
    fmt = lambda v, d=1: "—" if v is None else f"{v:.{d}f}"
    print(f"| {alias} | {'GPU' if gpu else 'CPU'} | {l['level']} | {fmt(l.get('output_throughput'))} | {fmt(dec)} | {fmt(l.get('median_ttft_ms'))} | {fmt(tg)} | {ratio} | {fmt(pp)} | "
          + (f"{g['peak_memory_bytes'] / 2**30:.2f} GiB | {g['mean_utilization_pct']:.0f} % | {g['mean_power_w']:.0f} W |" if g else "— | — | — |"))
print()
print("Decode ratio: hearth's median per-request decode rate at c=1 over llama-bench's tg"
      " (same file, threads, offload and llama.cpp objects); 1.00 = parity.")
missing = sorted({k[0] for k in anchors} - {split(l['model'])[0] for l in report['levels']})
if missing:
    print(f"\nMeasured by llama-bench only (the bench was cut before them): {', '.join(missing)}")
EOF
echo >>"$SUMMARY"
echo "Finished after $(($(date +%s) - T0))s of ${BUDGET}s." >>"$SUMMARY"
log "done: $(ls "$OUT" | tr '\n' ' ')"
rm -rf "$WORK"
# Success means figures from both sides came back (a cut run still returns what it has).
[ -s "$OUT/report.json" ] || {
  log "no hearth report"
  exit 1
}
[ -s "$RESULTS" ] || {
  log "no llama-bench result"
  exit 1
}
