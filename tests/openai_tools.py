"""Tool calls through the official `openai` package, as an application would make them.

Usage: openai_tools.py BASE_URL MODEL. Exits non-zero on the first failed expectation.
"""
import json
import sys

import openai

base_url, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key="any-key")

tools = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}},
            "required": ["city"],
        },
    },
}]
messages = [{"role": "user", "content": "What is the weather in Paris?"}]

# A warm-up: the two answers compared below then both reuse the prompt from the server's
# prompt cache (a cold prefill is another batch shape, whose greedy text may differ).
client.chat.completions.create(
    model=model, messages=messages, tools=tools, tool_choice="required",
    parallel_tool_calls=False, max_tokens=100, temperature=0,
)

# A required call parses into tool_calls with JSON arguments.
first = client.chat.completions.create(
    model=model, messages=messages, tools=tools, tool_choice="required",
    parallel_tool_calls=False, max_tokens=100, temperature=0,
)
choice = first.choices[0]
assert choice.finish_reason == "tool_calls", first
calls = choice.message.tool_calls
assert calls and calls[0].type == "function", first
call = calls[0]
assert call.function.name == "get_weather", call
arguments = json.loads(call.function.arguments)
assert isinstance(arguments.get("city"), str), arguments

# Streamed: the deltas add up to the same call.
name, args, finish = "", "", None
stream = client.chat.completions.create(
    model=model, messages=messages, tools=tools, tool_choice="required",
    parallel_tool_calls=False, max_tokens=100, temperature=0, stream=True,
)
for chunk in stream:
    delta = chunk.choices[0].delta if chunk.choices else None
    for tc in (delta.tool_calls or []) if delta else []:
        assert tc.index == 0, tc
        name += tc.function.name or ""
        args += tc.function.arguments or ""
    if chunk.choices and chunk.choices[0].finish_reason:
        finish = chunk.choices[0].finish_reason
assert (name, args, finish) == ("get_weather", call.function.arguments, "tool_calls"), (name, args, finish)

# Round trip: the assistant's call and the tool's answer go back; the chat continues.
messages.append(choice.message.model_dump(exclude_none=True))
messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature_c": 21, "sky": "sunny"})})
second = client.chat.completions.create(
    model=model, messages=messages, tools=tools, tool_choice="none", max_tokens=40, temperature=0,
)
answer = second.choices[0]
assert answer.message.role == "assistant", second
assert answer.message.content and answer.message.content.strip(), second
assert not answer.message.tool_calls, second
print("tool call:", call.function.name, call.function.arguments, "| answer:", answer.message.content)
