#!/usr/bin/env bash
# Builds hearth with `--features cuda` on a machine without a CUDA toolkit, and packs the kit
# that perf/gpu/device.sh runs on the GPU machine.
#
# 1. Toolkit: NVIDIA's CUDA 13.0 toolkit from its pip wheels (nvcc, runtime, cuBLAS, CCCL, CRT,
#    NVVM), installed with pip into a private prefix (target/gpu-kit/toolkit) and laid out the
#    way CMake and llama-cpp-sys-2's build script look for a toolkit (lib64/, unversioned .so
#    links). Nothing is installed system-wide.
# 2. hearth: `cargo build --release --features cuda` into target/cuda, for the architectures in
#    CUDA_ARCHS (default 90: the H200). The pip wheels carry cuBLAS as shared libraries only, so
#    the binary links the CUDA runtime statically and cuBLAS dynamically (libcublas.so.13,
#    libcublasLt.so.13: any CUDA 13 toolkit, or PyTorch's wheels, has them); libcuda.so.1 is the
#    driver. Run it with LD_LIBRARY_PATH naming a folder with libcublas.so.13.
# 3. llama-bench: linked against the very libraries of hearth's llama.cpp build (llama, ggml,
#    ggml-cuda, common: the same objects), so the anchor runs exactly hearth's kernels. The
#    llama-cpp-sys-2 crate ships llama.cpp without the tools' sources, so llama-bench.cpp and
#    main.cpp come from the reference llama.cpp of perf/engine-vs-llama-bench.sh (the
#    llama-cpp-python sdist, pip) and are compiled against the crate's own headers.
# 4. The kit: hearth, llama-bench, libgomp (OpenMP runtime, in case the GPU machine lacks it)
#    and MANIFEST, staged in target/gpu-kit/stage and packed into target/gpu-kit/carry/
#    kit.tar.xz: under the 64 MiB a device call carries; see perf/gpu/README.md for how to
#    start device.sh with it.
#
# Usage: perf/gpu/build-cuda.sh [--rehearsal]
#   --rehearsal   pack the kit from the CPU build instead (target/release/hearth, and llama-bench
#                 linked the same way against that build's llama.cpp): the same route, layout
#                 and device.sh, without the toolkit or a CUDA compile. Used by the rehearsal.
# Environment:
#   CUDA_ARCHS   CMake CUDA architectures (default 90). A release build for every GPU the
#                toolkit supports: CUDA_ARCHS="75-real;80-real;86-real;89-real;90-real;100-real;120"
#   JOBS         parallel compile jobs (default: the number of cores)
#   HEARTH_BIN   the CPU hearth a rehearsal kit takes (default target/release/hearth)
#   HEARTH_GPU_KIT  where the kit goes (default target/gpu-kit/carry; the test suite's
#                rehearsal uses its own, so a CUDA kit built here is never overwritten)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

log() { echo "build-cuda: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

REHEARSAL=0
case "${1:-}" in
  "") ;;
  --rehearsal) REHEARSAL=1 ;;
  *) die "unknown argument '$1' (usage: $0 [--rehearsal])" ;;
esac

KIT=$ROOT/target/gpu-kit
CARRY=${HEARTH_GPU_KIT:-$KIT/carry} # what travels: kit.tar.xz and a copy of MANIFEST
STAGE=$CARRY.stage                  # the kit unpacked: bin/, lib/, MANIFEST
CUDA_ARCHS=${CUDA_ARCHS:-90}
JOBS=${JOBS:-$(nproc)}

# Packs $STAGE into $CARRY/kit.tar.xz. The libgomp the binaries were linked against goes in
# too: the GPU image need not have GCC's OpenMP runtime (300 KB). hearth and llama-bench hold
# the same CUDA kernels; xz with a dictionary larger than hearth finds the second copy, which
# halves the archive (a plain xz -9 misses it).
pack() {
  local gomp
  gomp=$(ldd "$STAGE/bin/hearth" | awk '$1 == "libgomp.so.1" { print $3 }')
  mkdir -p "$STAGE/lib"
  if [ -n "$gomp" ]; then cp -L "$gomp" "$STAGE/lib/"; fi
  {
    echo "kit: $1"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), $(nproc) cores"
    echo "hearth commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (modified)')"
    echo "files:"
    (cd "$STAGE" && find bin lib -type f -printf '  %p %s bytes\n' | sort)
    echo "ldd bin/hearth:"
    ldd "$STAGE/bin/hearth" | sed 's/^/ /'
    shift
    for line in "$@"; do echo "$line"; done
  } >"$STAGE/MANIFEST"
  rm -rf "$CARRY"
  mkdir -p "$CARRY"
  log "packing $(du -sb "$STAGE" | cut -f1) bytes with xz (dictionary 256 MiB; a minute or two)"
  tar -C "$STAGE" -cf - bin lib MANIFEST | xz --lzma2=preset=9e,dict=256MiB -T1 >"$CARRY/kit.tar.xz"
  cp "$STAGE/MANIFEST" "$CARRY/MANIFEST"
  echo "carried: kit.tar.xz $(stat -c %s "$CARRY/kit.tar.xz") bytes" >>"$CARRY/MANIFEST"
  cat "$CARRY/MANIFEST" >&2
  local size
  size=$(du -sb "$CARRY" | cut -f1)
  log "kit in $CARRY: $size bytes ($((size / 1048576)) MiB of the 64 MiB a device call carries)"
  [ "$size" -lt $((60 * 1048576)) ] || die "the kit is too big to carry beside the repository"
}

# llama-bench's two source files, from the reference llama.cpp (see step 3).
REF_VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
bench_sources() {
  local dir=$KIT/llama-bench-src sdist_dir=$ROOT/target/llama-ref/sdist
  if [ ! -f "$dir/llama-bench.cpp" ]; then
    local sdist=$sdist_dir/llama_cpp_python-$REF_VERSION.tar.gz
    if [ ! -f "$sdist" ]; then
      mkdir -p "$sdist_dir"
      log "downloading the llama-cpp-python $REF_VERSION sdist (~75 MB) for llama-bench's sources"
      python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$sdist_dir" \
        "llama-cpp-python==$REF_VERSION" >&2 || die "pip could not download llama-cpp-python==$REF_VERSION"
    fi
    mkdir -p "$dir.partial"
    tar -xzf "$sdist" -C "$dir.partial" --strip-components=5 \
      "llama_cpp_python-$REF_VERSION/vendor/llama.cpp/tools/llama-bench/llama-bench.cpp" \
      "llama_cpp_python-$REF_VERSION/vendor/llama.cpp/tools/llama-bench/main.cpp" ||
      die "no tools/llama-bench in $sdist"
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
  fi
  echo "$dir"
}

# Links llama-bench against the llama.cpp that cargo built into $1 (llama-cpp-sys-2's out/build);
# extra linker arguments follow (the CUDA libraries).
link_llama_bench() {
  local build=$1 out=$2 src llama
  shift 2
  src=$(bench_sources)
  llama=$(cargo metadata --format-version 1 --locked 2>/dev/null | python3 -c '
import json, sys, os
pkgs = [p for p in json.load(sys.stdin)["packages"] if p["name"] == "llama-cpp-sys-2"]
print(os.path.join(os.path.dirname(pkgs[0]["manifest_path"]), "llama.cpp") if pkgs else "")')
  [ -d "$llama/include" ] || die "cannot find llama-cpp-sys-2's llama.cpp sources"
  local archives=() a
  for a in common/libllama-common.a common/libllama-common-base.a vendor/cpp-httplib/libcpp-httplib.a \
    vendor/hash/libvendor-hash.a src/libllama.a ggml/src/libggml.a ggml/src/libggml-cpu.a \
    ggml/src/ggml-cuda/libggml-cuda.a ggml/src/libggml-base.a; do
    [ -f "$build/$a" ] && archives+=("$build/$a")
  done
  [ "${#archives[@]}" -ge 6 ] || die "llama.cpp's libraries are missing under $build"
  # OpenSSL: llama.cpp's common library downloads models over HTTPS (never used here).
  g++ -O3 -DNDEBUG -std=c++17 -fopenmp -I"$llama/include" -I"$llama/ggml/include" -I"$llama/common" \
    -I"$llama/vendor" "$src/llama-bench.cpp" "$src/main.cpp" -o "$out" \
    -Wl,--start-group "${archives[@]}" -Wl,--end-group "$@" -lssl -lcrypto -lpthread -ldl -lrt \
    >"$KIT/llama-bench-build.log" 2>&1 || {
    tail -n 20 "$KIT/llama-bench-build.log" >&2
    die "linking llama-bench failed (log: $KIT/llama-bench-build.log)"
  }
}

# The newest llama.cpp build tree cargo made under target dir $1.
llama_build_tree() {
  local base
  base=$(find "$1/release/build" -path '*llama-cpp-sys-2-*/out/build/ggml/src/libggml-base.a' -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2)
  [ -n "$base" ] || die "no llama.cpp build under $1 (cargo build --release first)"
  dirname "$(dirname "$(dirname "$base")")"
}

if [ "$REHEARSAL" = 1 ]; then
  hearth_bin=${HEARTH_BIN:-target/release/hearth}
  [ -x "$hearth_bin" ] || die "no $hearth_bin: cargo build --release first"
  mkdir -p "$KIT"
  rm -rf "$STAGE"
  mkdir -p "$STAGE/bin"
  cp "$hearth_bin" "$STAGE/bin/hearth"
  link_llama_bench "$(llama_build_tree "$ROOT/target")" "$STAGE/bin/llama-bench"
  strip "$STAGE/bin/hearth" "$STAGE/bin/llama-bench"
  pack "rehearsal (CPU build)"
  exit 0
fi

for tool in cargo cmake python3 gcc nm ar; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed (scripts/setup.sh installs what hearth needs)"
done
started=$(date +%s)

# --- 1. the toolkit, from pip wheels ---------------------------------------------------------
TK_SITE=$KIT/toolkit
CUDA=$TK_SITE/nvidia/cu13
if [ ! -x "$CUDA/bin/nvcc" ]; then
  log "installing the CUDA 13.0 toolkit wheels into $TK_SITE (about 530 MB of downloads)"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$TK_SITE" \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-crt==13.0.88 \
    nvidia-nvvm==13.0.88 nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.0.2.14 >&2 ||
    die "pip could not install the CUDA wheels"
fi
# What CMake's FindCUDAToolkit and find_cuda_helper expect of a toolkit: lib64/ (with stubs/),
# unversioned library names for the linker.
[ -e "$CUDA/lib64" ] || ln -s lib "$CUDA/lib64"
for so in cudart cublas cublasLt; do
  [ -e "$CUDA/lib/lib$so.so" ] || ln -s "lib$so.so.13" "$CUDA/lib/lib$so.so"
done
mkdir -p "$CUDA/lib/stubs"
# llama-cpp-sys-2 asks for cuBLAS as static archives (cublas_static, cublasLt_static, culibos),
# which the wheels do not carry: empty archives satisfy its link lines, and the shared cuBLAS
# is linked instead (RUSTFLAGS below).
for a in cublas_static cublasLt_static culibos; do
  [ -f "$CUDA/lib/lib$a.a" ] || ar rc "$CUDA/lib/lib$a.a"
done
# The driver (libcuda.so.1) is not in any wheel; at link time a stub with the names ggml-cuda
# calls stands in (what the toolkit's own stubs/libcuda.so is), and the GPU machine's driver
# is loaded at run time. A first stub with no symbols lets CMake configure; the real one is
# made from the compiled objects before the final link.
make_driver_stub() {
  local syms=$KIT/driver-symbols.txt src=$KIT/cuda-stub.c
  : >"$syms"
  if [ -n "${1:-}" ]; then
    nm -u "$1" 2>/dev/null | awk '{ print $NF }' | grep -E '^cu[A-Z][A-Za-z0-9_]*$' | sort -u >"$syms"
  fi
  {
    echo "/* Link-time stand-in for libcuda.so.1 (made by perf/gpu/build-cuda.sh). */"
    while read -r s; do echo "void $s(void) {}"; done <"$syms"
    echo "void hearth_cuda_stub(void) {}"
  } >"$src"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$CUDA/lib/stubs/libcuda.so" "$src"
  ln -sf libcuda.so "$CUDA/lib/stubs/libcuda.so.1"
}
[ -f "$CUDA/lib/stubs/libcuda.so" ] || make_driver_stub
"$CUDA/bin/nvcc" --version | tail -2 >&2

# --- 2. hearth with --features cuda ----------------------------------------------------------
export CUDA_PATH=$CUDA
# find_cuda_helper (llama-cpp-sys-2's build script) looks for lib64/ under this one.
export CUDA_LIBRARY_PATH=$CUDA
export CUDACXX=$CUDA/bin/nvcc
export CMAKE_CUDA_COMPILER=$CUDA/bin/nvcc
export CMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHS
export CUDAToolkit_ROOT=$CUDA
export PATH=$CUDA/bin:$PATH
export CMAKE_BUILD_PARALLEL_LEVEL=$JOBS
export CARGO_TARGET_DIR=$ROOT/target/cuda
export RUSTFLAGS="-C link-arg=-L$CUDA/lib -C link-arg=-L$CUDA/lib/stubs -C link-arg=-lcublas -C link-arg=-lcublasLt"
log "cargo build --release --features cuda (CUDA_ARCHS=$CUDA_ARCHS, -j $JOBS; the CUDA kernels take long on few cores)"
# The library first: it compiles llama.cpp with CUDA but links nothing, so the driver stub can
# be made from ggml-cuda's objects before the binary is linked.
cargo build --release --locked --features cuda --lib -j "$JOBS" >&2
ggml_cuda=$(find "$CARGO_TARGET_DIR/release/build" -name libggml-cuda.a -path '*llama-cpp-sys-2*' -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)
[ -n "$ggml_cuda" ] || die "the build made no libggml-cuda.a"
make_driver_stub "$ggml_cuda"
log "driver stub: $(wc -l <"$KIT/driver-symbols.txt") driver API symbols"
cargo build --release --locked --features cuda --bin hearth -j "$JOBS" >&2
hearth_seconds=$(($(date +%s) - started))

# --- 3. llama-bench against the same libraries -----------------------------------------------
log "llama-bench, linked against this build's llama.cpp and ggml-cuda"
link_llama_bench "$(llama_build_tree "$CARGO_TARGET_DIR")" "$KIT/llama-bench" \
  -L"$CUDA/lib" -lcudart_static -lcublas -lcublasLt -L"$CUDA/lib/stubs" -lcuda
llama_bench=$KIT/llama-bench

# --- 4. the kit -------------------------------------------------------------------------------
rm -rf "$STAGE"
mkdir -p "$STAGE/bin"
cp "$CARGO_TARGET_DIR/release/hearth" "$llama_bench" "$STAGE/bin/"
strip "$STAGE/bin/hearth" "$STAGE/bin/llama-bench"
total=$(($(date +%s) - started))
pack "CUDA (archs $CUDA_ARCHS, toolkit wheels 13.0)" \
  "this invocation took: $hearth_seconds s to hearth, $total s in all (-j $JOBS)" \
  "hearth size unstripped: $(stat -c %s "$CARGO_TARGET_DIR/release/hearth") bytes"
