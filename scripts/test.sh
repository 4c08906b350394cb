#!/usr/bin/env bash
# The README's test command: set up (system packages, default model), then the whole suite.
# Everything is built once, in release mode, so llama.cpp is compiled a single time.
set -euo pipefail
cd "$(dirname "$0")/.."
HEARTH_TEST_MODEL=$(scripts/setup.sh --with-postgres | tail -n 1)
export HEARTH_TEST_MODEL
# The store tests run against PostgreSQL as well as SQLite; setup.sh made this role and database.
export HEARTH_TEST_PG_URL=${HEARTH_TEST_PG_URL:-postgres://hearth:hearth@127.0.0.1:5432/hearth_test}
cargo test --release --locked "$@"
