"""The official openai SDK against an `anthropic` provider: the gateway speaks Anthropic's Messages
API to the test LLM server's /v1/messages and answers in OpenAI's shape (normal, streaming, tools).

Run by scripts/sdk-test.sh, with OPENAI_BASE_URL pointing at the route to the anthropic backend."""

import json
import os
import sys

from openai import OpenAI

MODEL = "claude-sdk-test"


def main() -> int:
    client = OpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="client-key-unused", max_retries=0)

    completion = client.chat.completions.create(
        model="",
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Reply with exactly: hello from claude"},
        ],
        max_tokens=64,
    )
    assert completion.object == "chat.completion", completion
    assert completion.model == MODEL, completion.model
    assert completion.choices[0].message.content == "hello from claude", completion
    assert completion.choices[0].finish_reason == "stop", completion
    usage = completion.usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, usage
    print(f"anthropic: normal completion ok: usage={usage.model_dump()}")

    text = []
    usage = None
    for chunk in client.chat.completions.create(
        model="",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Reply with exactly: streamed through the messages api"}],
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
    assert "".join(text) == "streamed through the messages api", text
    assert usage is not None and usage.completion_tokens > 0, usage
    print(f"anthropic: streaming completion ok: usage={usage.model_dump()}")

    tools = [{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }]
    completion = client.chat.completions.create(
        model="",
        tools=tools,
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
        tools=tools,
        messages=[
            {"role": "user", "content": "What is the weather in Paris? Reply with exactly: sunny in paris"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    assert completion.choices[0].finish_reason in ("stop", "tool_calls"), completion
    print(f"anthropic: tool call ok: {call.function.name}({call.function.arguments})")

    # What Anthropic cannot do is refused with a 400 naming the field, in OpenAI's shape.
    try:
        client.chat.completions.create(model="", n=2, messages=[{"role": "user", "content": "x"}])
    except Exception as error:  # openai.BadRequestError
        assert getattr(error, "status_code", None) == 400, error
        assert "n:" in str(error), error
    else:
        raise AssertionError("n=2 was accepted")
    print("anthropic: n=2 refused with 400")
    return 0


if __name__ == "__main__":
    sys.exit(main())
