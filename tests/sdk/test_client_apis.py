"""The official anthropic and openai SDKs against the gateway's other client APIs, on every route:
Anthropic's Messages API (`/v1/messages`, `/v1/messages/count_tokens`) and OpenAI's Responses API
(`/v1/responses`), next to chat completions. A provider that speaks the client's API gets the
request as it is (Anthropic and Claude on Vertex AI for messages, OpenAI for responses); every
other provider gets a chat completion, whose answer the gateway turns back into the client's API:
JSON, event streams, usage, tool calls and errors, read through the same SDK calls an application
makes.

Run by scripts/sdk-test.sh with OPENAI_BASE_URL (the tutorial's route, an OpenAI-compatible
provider, here named `openai`) and PROVIDER_KINDS (space-separated `name=base_url=model=flags`, as
for test_provider_kinds.py; model `any`: not checked). Tool calls are checked where the provider's
API makes them: natively spoken client APIs, and translated ones where the provider has the `tools`
flag (the test LLM server's chat completions, which the `openai` and `azure` routes speak, make
none). Errors are a provider's (a 404 the test LLM server injects in its own API's shape) and the
gateway's own refusals: the tutorial's route matches every path, so no prefix goes unrouted. Every
check runs, one line each; the exit status is non-zero when any failed, and the
failures are listed last."""

import json
import os
import sys
import traceback
from typing import Callable, NamedTuple, Optional

import anthropic
import openai

# The model of the tutorial's route (examples/tutorial/01-local-llm.yaml).
DEFAULT_MODEL = "gemma-4-12b-it-Q5_K_M.gguf"
# The routes whose provider speaks the client's API itself; every other route translates.
MESSAGES_NATIVE = {"claude", "vertex-claude"}
RESPONSES_NATIVE = {"openai"}
# Token counting is Anthropic's API only: anthropic providers (not Claude on Vertex AI).
COUNT_TOKENS = {"claude"}
# The test LLM server answers with this status (an error body in its endpoint's own shape).
FAULT = {"x-mock-fault": "status=404"}

ANTHROPIC_TOOL = {
    "name": "get_weather",
    "description": "The weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
RESPONSES_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
QUESTION = "What is the weather in Paris?"
# The follow-up turn after the tool's result: no `weather` in it, so no second call.
FOLLOW_UP = "Reply with exactly: sunny in paris"


class Route(NamedTuple):
    name: str
    # The proxy's URL up to the route's prefix (no `/v1`): the anthropic SDK's base URL.
    prefix_url: str
    # The model configured on the route's provider (`any`: not checked).
    model: str
    flags: frozenset = frozenset()

    @property
    def openai_url(self) -> str:
        return f"{self.prefix_url}/v1"

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.prefix_url, api_key="client-key", max_retries=0, timeout=20)

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.openai_url, api_key="client-key", max_retries=0, timeout=20)

    def check_model(self, model: str) -> None:
        assert self.model == "any" or model == self.model, f"model {model!r}, expected {self.model!r}"


FAILURES: list = []


def check(label: str, fn: Optional[Callable], *args) -> None:
    """Runs one check and prints one line: `ok` (with what the check returned) or the failure."""
    if fn is None:
        print(f"{label}: skipped: the provider's API makes no tool calls on the test LLM server")
        return
    try:
        detail = fn(*args)
    except Exception as error:  # noqa: BLE001: every failure is reported, the others still run
        FAILURES.append(label)
        where = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == __file__]
        line = f" (line {where[-1].lineno}: {where[-1].line})" if where else ""
        print(f"{label}: FAILED{line}: {type(error).__name__}: {error}")
    else:
        print(f"{label}: ok" + (f": {detail}" if detail else ""))


def usage_text(usage) -> str:
    return f"usage in={usage.input_tokens} out={usage.output_tokens}"


# --- Anthropic Messages API, through the anthropic SDK.


def messages_text(route: Route) -> str:
    message = route.anthropic().messages.create(
        model=route.model,
        max_tokens=64,
        system="Answer briefly.",
        messages=[{"role": "user", "content": f"Reply with exactly: hello from {route.name}"}],
    )
    assert message.type == "message" and message.role == "assistant", message
    assert message.content[0].type == "text", message
    assert message.content[0].text == f"hello from {route.name}", message
    assert message.stop_reason == "end_turn", message
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0, message.usage
    route.check_model(message.model)
    return usage_text(message.usage)


def messages_stream(route: Route) -> str:
    expected = f"streamed through {route.name}"
    with route.anthropic().messages.stream(
        model=route.model,
        max_tokens=64,
        messages=[{"role": "user", "content": f"Reply with exactly: {expected}"}],
    ) as stream:
        text = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(text) == expected, text
    assert final.content[0].type == "text" and final.content[0].text == expected, final
    assert final.stop_reason == "end_turn", final
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0, final.usage
    route.check_model(final.model)
    return f"{len(text)} text events, {usage_text(final.usage)}"


def messages_tool_use(route: Route) -> str:
    client = route.anthropic()
    question = {"role": "user", "content": QUESTION}
    message = client.messages.create(
        model=route.model,
        max_tokens=256,
        tools=[ANTHROPIC_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[question],
    )
    uses = [block for block in message.content if block.type == "tool_use"]
    assert message.stop_reason == "tool_use", message
    assert len(uses) == 1 and uses[0].name == "get_weather", message
    assert isinstance(uses[0].input, dict) and uses[0].id, uses[0]
    assert message.usage.output_tokens > 0, message.usage
    # The tool's result goes back (with the assistant turn as it came), and the model answers.
    answer = client.messages.create(
        model=route.model,
        max_tokens=256,
        tools=[ANTHROPIC_TOOL],
        messages=[
            question,
            {"role": "assistant", "content": message.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny, 21 C"},
                    {"type": "text", "text": FOLLOW_UP},
                ],
            },
        ],
    )
    assert answer.stop_reason == "end_turn", answer
    assert [b.type for b in answer.content] == ["text"] and answer.content[0].text == "sunny in paris", answer
    return f"{uses[0].name}({json.dumps(uses[0].input)}), then {answer.content[0].text!r}"


def messages_stream_tool_use(route: Route) -> str:
    pieces = []
    with route.anthropic().messages.stream(
        model=route.model,
        max_tokens=256,
        tools=[ANTHROPIC_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": QUESTION}],
    ) as stream:
        for event in stream:
            if event.type == "input_json":
                pieces.append(event.partial_json)
        final = stream.get_final_message()
    uses = [block for block in final.content if block.type == "tool_use"]
    assert final.stop_reason == "tool_use", final
    assert len(uses) == 1 and uses[0].name == "get_weather", final
    assert isinstance(uses[0].input, dict), uses[0]
    assert pieces and json.loads("".join(pieces)) == uses[0].input, pieces
    assert final.usage.output_tokens > 0, final.usage
    return f"{len(pieces)} input_json events"


def count_tokens(route: Route) -> str:
    client = route.anthropic()
    request = {"model": route.model, "messages": [{"role": "user", "content": "How many tokens is this?"}]}
    if route.name in COUNT_TOKENS:
        count = client.messages.count_tokens(**request)
        assert count.input_tokens > 0, count
        return f"input_tokens={count.input_tokens}"
    try:
        client.messages.count_tokens(**request)
    except anthropic.NotFoundError as error:
        assert error.body["type"] == "error", error.body
        assert error.body["error"]["type"] == "not_found_error", error.body
        return f"404 {error.body['error']['type']}"
    raise AssertionError("count_tokens was answered by a provider that is not anthropic")


def messages_refused_field(route: Route) -> str:
    """What a chat completion cannot express is a 400 in Anthropic's shape naming the field."""
    try:
        route.anthropic().messages.create(
            model=route.model,
            max_tokens=64,
            extra_body={"top_k": 5},  # not a parameter of the SDK's create() any more
            messages=[{"role": "user", "content": "Reply with exactly: top k"}],
        )
    except anthropic.BadRequestError as error:
        assert error.body["type"] == "error", error.body
        assert error.body["error"]["type"] == "invalid_request_error", error.body
        assert "top_k" in error.body["error"]["message"], error.body
        return "400 invalid_request_error naming top_k"
    raise AssertionError("top_k was accepted by a translated route")


def messages_provider_error(route: Route) -> str:
    """The provider's 404 (in its own API's shape) reaches the client in Anthropic's."""
    try:
        route.anthropic().messages.create(
            model=route.model,
            max_tokens=64,
            extra_headers=FAULT,
            messages=[{"role": "user", "content": "Reply with exactly: never"}],
        )
    except anthropic.NotFoundError as error:
        assert error.body["type"] == "error", error.body
        assert error.body["error"]["type"] == "not_found_error", error.body
        assert isinstance(error.body["error"]["message"], str), error.body
        return f"404 {error.body['error']['type']}"
    raise AssertionError("the provider's 404 was not an anthropic.NotFoundError")


# --- OpenAI Responses API, through the openai SDK.


def responses_text(route: Route) -> str:
    client = route.openai()
    prompt = f"Reply with exactly: hello from {route.name}"
    response = client.responses.create(model=route.model, input=prompt)
    assert response.object == "response" and response.status == "completed", response
    assert response.output_text == f"hello from {route.name}", response
    usage = response.usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens > 0, usage
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens, usage
    route.check_model(response.model)
    # `instructions` reach the model: they count as input.
    instructed = client.responses.create(model=route.model, instructions="Answer briefly.", input=prompt)
    assert instructed.output_text == f"hello from {route.name}", instructed
    assert instructed.usage.input_tokens > usage.input_tokens, (instructed.usage, usage)
    return f"{usage_text(usage)}, with instructions in={instructed.usage.input_tokens}"


def responses_stream(route: Route) -> str:
    expected = f"streamed through {route.name}"
    deltas, types = [], []
    with route.openai().responses.stream(model=route.model, input=f"Reply with exactly: {expected}") as stream:
        for event in stream:
            types.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert types[0] == "response.created" and types[-1] == "response.completed", types
    assert "".join(deltas) == expected, deltas
    assert final.status == "completed" and final.output_text == expected, final
    assert final.usage is not None and final.usage.input_tokens > 0 and final.usage.output_tokens > 0, final.usage
    route.check_model(final.model)
    return f"{len(types)} events, {len(deltas)} text deltas, {usage_text(final.usage)}"


def responses_function_call(route: Route) -> str:
    client = route.openai()
    question = {"role": "user", "content": QUESTION}
    response = client.responses.create(
        model=route.model,
        input=[question],
        tools=[RESPONSES_TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
    )
    calls = [item for item in response.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather", response.output
    assert isinstance(json.loads(calls[0].arguments), dict) and calls[0].call_id, calls[0]
    # The call (the output items as they came) and its output go back, and the model answers.
    answer = client.responses.create(
        model=route.model,
        tools=[RESPONSES_TOOL],
        input=[
            question,
            *response.output,
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21 C"},
            {"role": "user", "content": FOLLOW_UP},
        ],
    )
    assert answer.status == "completed" and answer.output_text == "sunny in paris", answer
    assert not [item for item in answer.output if item.type == "function_call"], answer.output
    return f"{calls[0].name}({calls[0].arguments}), then {answer.output_text!r}"


def responses_stream_function_call(route: Route) -> str:
    pieces = []
    with route.openai().responses.stream(
        model=route.model,
        input=QUESTION,
        tools=[RESPONSES_TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
    ) as stream:
        for event in stream:
            if event.type == "response.function_call_arguments.delta":
                pieces.append(event.delta)
        final = stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather", final.output
    assert pieces and "".join(pieces) == calls[0].arguments, (pieces, calls[0].arguments)
    assert isinstance(json.loads(calls[0].arguments), dict), calls[0]
    return f"{len(pieces)} argument deltas"


def responses_state(route: Route) -> str:
    client = route.openai()
    if route.name in RESPONSES_NATIVE:
        # The provider keeps the conversation: the second turn continues the first.
        first = client.responses.create(model=route.model, input="Reply with exactly: first answer")
        second = client.responses.create(
            model=route.model, previous_response_id=first.id, input="Reply with exactly: second answer"
        )
        assert second.output_text == "second answer", second
        assert second.previous_response_id == first.id, second
        assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens, (
            first.usage,
            second.usage,
        )
        return f"previous_response_id continues {first.id} (in={second.usage.input_tokens})"
    # A translated provider keeps no state: what needs it is refused, naming the field.
    refused = []
    for field, value in (("previous_response_id", "resp_elsewhere"), ("store", True)):
        try:
            client.responses.create(model=route.model, input="Reply with exactly: never", **{field: value})
        except openai.BadRequestError as error:
            assert error.status_code == 400, error
            assert field in error.message, error.message
            assert error.body["type"] == "invalid_request_error", error.body
            refused.append(field)
        else:
            raise AssertionError(f"{field}={value!r} was accepted by a translated route")
    unstored = client.responses.create(model=route.model, store=False, input="Reply with exactly: not stored")
    assert unstored.output_text == "not stored", unstored
    return f"400 for {' and '.join(refused)}; store=False served"


def responses_provider_error(route: Route) -> str:
    """The provider's 404 (in its own API's shape) reaches the client in OpenAI's."""
    try:
        route.openai().responses.create(model=route.model, input="Reply with exactly: never", extra_headers=FAULT)
    except openai.NotFoundError as error:
        assert error.status_code == 404, error
        assert isinstance(error.body, dict) and isinstance(error.body.get("message"), str), error.body
        assert error.type == "invalid_request_error", f"not OpenAI's error shape (its `type`): {error.body}"
        return f"404 {error.type}"
    raise AssertionError("the provider's 404 was not an openai.NotFoundError")


def routes() -> list:
    found = [Route("openai", os.environ["OPENAI_BASE_URL"].removesuffix("/v1"), DEFAULT_MODEL)]
    for kind in os.environ["PROVIDER_KINDS"].split():
        name, base_url, model, flags = kind.split("=")
        found.append(Route(name, base_url.removesuffix("/v1"), model, frozenset(flags.split(","))))
    return found


def main() -> int:
    all_routes = routes()
    for route in all_routes:
        m = "native" if route.name in MESSAGES_NATIVE else "translated"
        r = "native" if route.name in RESPONSES_NATIVE else "translated"
        # A check left as None is skipped: the provider's API makes no tool calls.
        m_tools = "tools" in route.flags or route.name in MESSAGES_NATIVE
        r_tools = "tools" in route.flags or route.name in RESPONSES_NATIVE
        checks = [
            (f"messages ({m}): text", messages_text),
            (f"messages ({m}): stream", messages_stream),
            (f"messages ({m}): tool use and tool result", messages_tool_use if m_tools else None),
            (f"messages ({m}): streamed tool use", messages_stream_tool_use if m_tools else None),
            ("messages: count_tokens", count_tokens),
            ("messages: provider error", messages_provider_error),
            (f"responses ({r}): text and instructions", responses_text),
            (f"responses ({r}): stream", responses_stream),
            (f"responses ({r}): function call and output", responses_function_call if r_tools else None),
            (f"responses ({r}): streamed function call", responses_stream_function_call if r_tools else None),
            (f"responses ({r}): state", responses_state),
            ("responses: provider error", responses_provider_error),
        ]
        if route.name not in MESSAGES_NATIVE:
            checks.insert(5, ("messages (translated): top_k refused", messages_refused_field))
        for label, fn in checks:
            check(f"{route.name}: {label}", fn, route)
    if FAILURES:
        print(f"\n{len(FAILURES)} client API check(s) FAILED:", file=sys.stderr)
        for label in FAILURES:
            print(f"  {label}", file=sys.stderr)
        return 1
    print(f"client APIs ok: {', '.join(route.name for route in all_routes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
