#!/usr/bin/env bash
# Makes data/sample-sharegpt.json, the conversation file `hearth bench --dataset` is shown
# with: eight questions answered by the default model through `hearth serve` (temperature 0,
# 160 tokens at most), written in the ShareGPT shape ({"id", "conversations": [{"from":
# "human"}, {"from": "gpt"}]}). The project makes its own sample rather than shipping a slice
# of someone else's conversations. Needs the build and the default model (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(scripts/setup.sh | tail -n 1)
bin=target/release/hearth
home=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$home"' EXIT
printf '{"smollm2-135m": {"path": "%s"}}' "$model" >"$home/models.json"
HEARTH_HOME=$home $bin serve --port 0 2>"$home/serve.log" &
server=$!
until addr=$(grep -o '127.0.0.1:[0-9]*' "$home/serve.log" | head -n 1) && [ -n "$addr" ]; do
  kill -0 "$server" || { cat "$home/serve.log"; exit 1; }
  sleep 0.2
done
python3 - "$addr" >data/sample-sharegpt.json <<'PY'
import json, sys, urllib.request
questions = [
    "What is the difference between a list and a tuple in Python?",
    "Explain in two sentences why the sky is blue.",
    "Give three tips for writing a good commit message.",
    "What does HTTP status code 429 mean, and what should a client do?",
    "Summarize the plot of Romeo and Juliet in one paragraph.",
    "How do I reverse a string in JavaScript?",
    "Name four renewable sources of energy and one drawback of each.",
    "Write a short, friendly reply declining a meeting invitation.",
]
out = []
for i, q in enumerate(questions, 1):
    body = json.dumps({"model": "smollm2-135m", "temperature": 0, "max_tokens": 160,
                       "messages": [{"role": "user", "content": q}]}).encode()
    req = urllib.request.Request(f"http://{sys.argv[1]}/v1/chat/completions", body,
                                 {"Content-Type": "application/json"})
    answer = json.load(urllib.request.urlopen(req))["choices"][0]["message"]["content"]
    out.append({"id": f"hearth-sample-{i}", "conversations": [
        {"from": "human", "value": q}, {"from": "gpt", "value": answer.strip()}]})
json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
print()
PY
echo "wrote data/sample-sharegpt.json"
