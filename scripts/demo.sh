#!/usr/bin/env bash
# The README's main command: set up, build, place the default model in hearth's cache (through
# `hearth model add`, which verifies its sha256) and run it once with timings.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(scripts/setup.sh | tail -n 1)
cargo build --release --locked
bin=target/release/hearth
$bin cache list >/dev/null
if ! $bin cache list --json | grep -q '"alias": "smollm2-135m"'; then
  $bin model add "$model" --alias smollm2-135m
fi
$bin model run smollm2-135m --prompt "Summarize in one sentence: the team met on Monday, agreed to ship the offline notes feature in March, and asked Dana to pick the default model." --max-tokens 96
