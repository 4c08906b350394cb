"""Drives hearth's server with the official `openai` package, as any application would.

Usage: openai_client.py BASE_URL MODEL. Exits non-zero on the first failed expectation.
"""
import sys

import openai

base_url, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key="any-key")

ids = [m.id for m in client.models.list().data]
assert model in ids, ids

# A warm-up: the two answers compared below then both reuse the prompt from the server's
# prompt cache (a cold prefill is another batch shape, whose greedy text may differ).
client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "What is the capital of France?"}],
    max_tokens=1,
    temperature=0,
)

chat = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "What is the capital of France?"}],
    max_tokens=16,
    temperature=0,
    seed=1,
)
text = chat.choices[0].message.content
assert text and text.strip(), chat
assert chat.usage.completion_tokens <= 16, chat.usage
assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens

pieces, usage = [], None
stream = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "What is the capital of France?"}],
    max_tokens=16,
    temperature=0,
    seed=1,
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if chunk.usage is not None:
        usage = chunk.usage
assert "".join(pieces) == text, ("".join(pieces), text)
assert usage is not None and usage.completion_tokens == chat.usage.completion_tokens, usage

completion = client.completions.create(model=model, prompt="The sky is", max_tokens=5, temperature=0)
assert completion.choices[0].text, completion

try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
except openai.NotFoundError as e:
    assert e.status_code == 404
else:
    raise AssertionError("unknown model did not raise NotFoundError")

try:
    client.chat.completions.create(model=model, messages=[])
except openai.BadRequestError as e:
    assert e.status_code == 400
else:
    raise AssertionError("empty messages did not raise BadRequestError")

print("all ok")
