#!/usr/bin/env bash
# The README's main command: the small-vs-large ladder on this machine, in one report.
# Set up, build, place the default model and Gemma 3 270M in hearth's cache (through
# `hearth model add`, which verifies their sha256), make the default model's Q4_0 variant
# (`hearth model quantize`, first run only), then `hearth bench` on
#   smollm2-135m (Q4_1), smollm2-135m@q4_0, gemma3-270m (a second family, a base model) and
#   llama-3.2-1b~shape (Llama 3.2 1B's architecture with random weights, made on demand by
#   `hearth model synth`: its speed and memory here without downloading it; never scored or
#   recommended, and the report says which real model to download to confirm quality),
# with the built-in summarizer prompts, 128 output tokens (the shape model always writes all
# 128), the comparison table, and the reports (JSON, CSV, Markdown, HTML, ending with a
# recommendation) in a new run folder printed at the end. Extra arguments go to `hearth bench`
# (e.g. `--rounds 1`); the README shows the full catalog ladder. About 4 minutes after the
# build on 2 cores.
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
if ! grep -q '"alias": "smollm2-135m@q4_0"' <<<"$cached"; then
  $bin model quantize smollm2-135m --type q4_0
fi
$bin bench --models smollm2-135m,smollm2-135m@q4_0,gemma3-270m,llama-3.2-1b~shape \
  --max-tokens 128 "$@"
