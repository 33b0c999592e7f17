"""The official openai SDK against every provider kind the gateway translates or re-addresses
(anthropic, gemini, azureopenai, bedrock, vertexai with a Gemini and a Claude model): the gateway
speaks each provider's native API to the test LLM server, which checks it as the provider documents
it (Bedrock's SigV4 signature, Vertex AI's JWT grant and token), and answers in OpenAI's shape:
normal, streaming and tool calls, through the same SDK calls an application makes.

Run by scripts/sdk-test.sh with PROVIDER_KINDS: space-separated `name=base_url=model=flags`
(model `any`: not checked; flags, comma-separated: `tools` checks tool calls, `embeddings`
embeddings (base64 and float), `refuses-n` that
`n=2` is a 400; `-` for none). Azure's bodies are OpenAI's unchanged, so its tool calls are the
provider's own business, not the gateway's: it is checked without `tools`."""

import json
import os
import sys

from openai import OpenAI

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}]


def check_kind(name: str, base_url: str, model: str, flags: set) -> None:
    client = OpenAI(base_url=base_url, api_key="client-key-unused", max_retries=0)

    completion = client.chat.completions.create(
        model="",
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": f"Reply with exactly: hello from {name}"},
        ],
        max_tokens=64,
    )
    assert completion.object == "chat.completion", completion
    # Azure answers with the deployment's underlying model, which the gateway does not know.
    assert model == "any" or completion.model == model, (name, completion.model)
    assert completion.choices[0].message.content == f"hello from {name}", completion
    assert completion.choices[0].finish_reason == "stop", completion
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0, usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, usage
    print(f"{name}: normal completion ok: usage={usage.model_dump(exclude_none=True)}")

    text = []
    usage = None
    finish = None
    for chunk in client.chat.completions.create(
        model="",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": f"Reply with exactly: streamed through {name}"}],
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    assert "".join(text) == f"streamed through {name}", text
    assert finish == "stop", finish
    assert usage is not None and usage.completion_tokens > 0, usage
    print(f"{name}: streaming completion ok: usage={usage.model_dump(exclude_none=True)}")

    if "tools" in flags:
        check_tools(name, client)

    if "embeddings" in flags:
        # The SDK asks for base64 vectors by default and decodes them.
        embeddings = client.embeddings.create(model="", input=["first text", "second text"])
        assert [e.index for e in embeddings.data] == [0, 1], embeddings
        assert all(len(e.embedding) > 0 and isinstance(e.embedding[0], float) for e in embeddings.data)
        floats = client.embeddings.create(model="", input="one text", encoding_format="float", dimensions=4)
        assert len(floats.data[0].embedding) == 4, floats
        print(f"{name}: embeddings ok ({len(embeddings.data[0].embedding)} dimensions)")

    if "refuses-n" in flags:
        # What the provider's API cannot express is refused with a 400 naming the field.
        try:
            client.chat.completions.create(model="", n=2, messages=[{"role": "user", "content": "x"}])
        except Exception as error:  # openai.BadRequestError
            assert getattr(error, "status_code", None) == 400, error
            assert "n:" in str(error), error
        else:
            raise AssertionError(f"{name}: n=2 was accepted")
        print(f"{name}: n=2 refused with 400")


def check_tools(name: str, client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="",
        tools=TOOLS,
        tool_choice="required",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls", completion
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather", call
    assert isinstance(json.loads(call.function.arguments), dict), call
    # The tool's result goes back, and the model answers.
    completion = client.chat.completions.create(
        model="",
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "What is the weather in Paris? Reply with exactly: sunny in paris"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    assert completion.choices[0].finish_reason in ("stop", "tool_calls"), completion
    print(f"{name}: tool call ok: {call.function.name}({call.function.arguments})")

    # A streamed tool call arrives in fragments the SDK reassembles.
    arguments = []
    for chunk in client.chat.completions.create(
        model="",
        stream=True,
        tools=TOOLS,
        tool_choice="required",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    ):
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            arguments.append(delta.function.arguments or "")
    assert isinstance(json.loads("".join(arguments)), dict), arguments
    print(f"{name}: streamed tool call ok")


def main() -> int:
    kinds = os.environ["PROVIDER_KINDS"].split()
    for kind in kinds:
        name, base_url, model, flags = kind.split("=")
        check_kind(name, base_url, model, set(flags.split(",")))
    print(f"provider kinds ok: {', '.join(k.split('=')[0] for k in kinds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
