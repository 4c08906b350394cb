#!/usr/bin/env bash
# The README's main command: set up, build, place the default model and Gemma 3 270M in
# hearth's cache (through `hearth model add`, which verifies their sha256), then
# `hearth bench --variants q4_0`: the default model (Q4_1) against its Q4_0 variant (made with
# `hearth model quantize` on the first run) on the built-in summarizer prompts, the comparison
# table, and the reports (JSON, CSV, Markdown, HTML, ending with a recommendation) written to a
# new run folder printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(scripts/setup.sh | tail -n 1)
cargo build --release --locked
bin=target/release/hearth
cached=$($bin cache list --json)
if ! grep -q '"alias": "smollm2-135m"' <<<"$cached"; then
  $bin model add "$model" --alias smollm2-135m
fi
# Gemma 3 270M (setup.sh puts it next to the default model), so `hearth bench --models
# gemma3-270m` finds it cached; `model add` checks it against the catalog's sha256.
if ! grep -q '"alias": "gemma3-270m"' <<<"$cached"; then
  $bin model add "$(dirname "$model")/gemma-3-270m-q4_k_m.gguf" --alias gemma3-270m
fi
$bin bench --variants q4_0 "$@"
