#!/usr/bin/env bash
# The README's test command: set up (system packages, the two models), then the whole suite.
# Everything is built once, in release mode, so llama.cpp is compiled a single time.
set -euo pipefail
cd "$(dirname "$0")/.."
HEARTH_TEST_MODEL=$(scripts/setup.sh --with-postgres | tail -n 1)
export HEARTH_TEST_MODEL
# The second family (Gemma 3 270M, a base model with sliding-window attention), which setup.sh
# places next to the default model.
HEARTH_TEST_GEMMA=$(dirname "$HEARTH_TEST_MODEL")/gemma-3-270m-q4_k_m.gguf
export HEARTH_TEST_GEMMA
# The store tests run against PostgreSQL as well as SQLite; setup.sh made this role and database.
export HEARTH_TEST_PG_URL=${HEARTH_TEST_PG_URL:-postgres://hearth:hearth@127.0.0.1:5432/hearth_test}
cargo test --release --locked "$@"
