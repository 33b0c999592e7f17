"""One gateway URL, many models: the official openai and anthropic SDKs send requests to the same
base URL, and the model in each request picks the backend (HTTPRoutes matching the
x-agentgateway-model header). Each backend serves its own configured model, which the answer
reports, so the answer says which backend served it.

Usage: model_routing.py BASE_URL GPT_MODEL CLAUDE_MODEL SELF_HOSTED_MODEL
(the models the gpt-*, claude-* and catch-all backends are configured with). Prints one line per
check and a last JSON line with what it saw; exits non-zero on the first failure."""

import json
import sys

import anthropic
import openai

BASE, GPT, CLAUDE, LOCAL = sys.argv[1:5]
oai = openai.OpenAI(base_url=f"{BASE}/v1", api_key="client-key", max_retries=0, timeout=30)
ant = anthropic.Anthropic(base_url=BASE, api_key="client-key", max_retries=0, timeout=30)
seen = {}


def check(name, got, expected):
    assert got == expected, f"{name}: served by {got!r}, expected {expected!r}"
    seen[name] = got
    print(f"{name}: ok ({got})")


# Chat completions, by model.
for asked, expected in [("gpt-4o", GPT), ("claude-3-5-sonnet", CLAUDE), ("llama-3.1-8b", LOCAL)]:
    reply = oai.chat.completions.create(
        model=asked, messages=[{"role": "user", "content": "Reply with exactly: routed"}]
    )
    assert reply.choices[0].message.content == "routed", reply
    check(f"openai chat {asked}", reply.model, expected)

# Anthropic Messages, by model: native on the Anthropic backend, translated on the others.
for asked, expected in [("claude-3-5-sonnet", CLAUDE), ("gpt-4o", GPT), ("llama-3.1-8b", LOCAL)]:
    message = ant.messages.create(
        model=asked, max_tokens=64, messages=[{"role": "user", "content": "Reply with exactly: routed"}]
    )
    assert message.content[0].text == "routed", message
    assert message.usage.output_tokens > 0, message
    check(f"anthropic messages {asked}", message.model, expected)
    with ant.messages.stream(
        model=asked, max_tokens=64, messages=[{"role": "user", "content": "Reply with exactly: streamed too"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "streamed too", text
    check(f"anthropic stream {asked}", final.model, expected)

# OpenAI Responses, by model: passed through to the OpenAI backend, translated elsewhere.
for asked, expected in [("gpt-4o", GPT), ("claude-3-5-sonnet", CLAUDE)]:
    response = oai.responses.create(model=asked, input="Reply with exactly: responded")
    assert response.output_text == "responded", response
    check(f"openai responses {asked}", response.model, expected)

# The model list names what the routes serve.
listed = sorted(m.id for m in oai.models.list())
assert listed == sorted([GPT, CLAUDE, LOCAL]), listed
print(f"models: ok ({listed})")
print(json.dumps({"served": seen, "models": listed}))
