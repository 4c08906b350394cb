#!/usr/bin/env bash
# The README's main command: set up, build, place the default model in hearth's cache (through
# `hearth model add`, which verifies its sha256), then `hearth bench --variants q4_0`: the
# default model (Q4_1) against its Q4_0 variant (made with `hearth model quantize` on the first
# run) on the built-in summarizer prompts, the comparison table, and the reports (JSON, CSV,
# Markdown, HTML, ending with a recommendation) written to a new run folder printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(scripts/setup.sh | tail -n 1)
cargo build --release --locked
bin=target/release/hearth
if ! $bin cache list --json | grep -q '"alias": "smollm2-135m"'; then
  $bin model add "$model" --alias smollm2-135m
fi
$bin bench --variants q4_0 "$@"
