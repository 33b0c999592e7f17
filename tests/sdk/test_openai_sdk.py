"""The official openai SDK against the gateway: a normal and a streaming chat completion.

Run by scripts/sdk-test.sh, which starts the proxy in front of the test LLM server."""

import os
import sys
import urllib.request

from openai import OpenAI

MODEL = "gemma-4-12b-it-Q5_K_M.gguf"


def main() -> int:
    client = OpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="unused-by-self-hosted", max_retries=0)

    completion = client.chat.completions.create(
        model="",
        messages=[{"role": "user", "content": "Reply with exactly: agentgateway works"}],
    )
    assert completion.model == MODEL, completion.model
    assert completion.choices[0].message.content == "agentgateway works", completion
    assert completion.choices[0].finish_reason == "stop", completion
    assert completion.usage is not None and completion.usage.total_tokens > 0, completion.usage
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    print(f"normal completion ok: usage={completion.usage.model_dump()}")

    # The client does not ask for usage: the gateway asks for it upstream and hides the extra
    # usage-only chunk, so every chunk the SDK sees has choices[0].
    text = []
    chunks = 0
    for chunk in client.chat.completions.create(
        model="",
        stream=True,
        messages=[{"role": "user", "content": "Reply with exactly: pool ok and streaming works"}],
    ):
        chunks += 1
        assert chunk.choices, f"a chunk without choices reached the client: {chunk}"
        text.append(chunk.choices[0].delta.content or "")
    assert "".join(text) == "pool ok and streaming works", text
    print(f"streaming completion ok: {chunks} chunks")

    # The client asks for usage itself: it gets the usage chunk, untouched.
    usage = None
    for chunk in client.chat.completions.create(
        model="",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Reply with exactly: usage please"}],
    ):
        if chunk.usage is not None:
            usage = chunk.usage
    assert usage is not None and usage.completion_tokens == 2, usage
    print(f"streaming usage ok: {usage.model_dump()}")

    metrics = urllib.request.urlopen(os.environ["METRICS_URL"]).read().decode()
    assert 'agentgateway_gen_ai_client_token_usage_count{gen_ai_token_type="input"' in metrics, metrics
    print("token usage recorded in metrics")
    return 0


if __name__ == "__main__":
    sys.exit(main())
