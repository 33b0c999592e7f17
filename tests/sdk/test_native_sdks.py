"""The providers' own SDKs against the test LLM server (no gateway in between), so that what the
gateway's tests rely on is the providers' real shapes, not our reading of their docs:

* openai: responses.create and responses.stream parse the server's Responses API (text, a function
  call, usage, a previous_response_id follow-up and its refusal);
* anthropic: messages.create and messages.stream parse the server's Messages API (text and tool use),
  and messages.count_tokens its token counting;
* boto3 bedrock-runtime: converse and converse_stream are signed by botocore's own SigV4 signer
  (the server verifies it) and parse the server's binary event stream;
* google-genai: generate_content and its stream parse the server's Gemini API; in Vertex AI mode,
  google-auth's service-account credentials make the JWT-bearer grant at the server's /token and
  call the publisher model routes with the token.

Run by scripts/sdk-test.sh with LLM_URL, AWS_KEY_ID, AWS_SECRET and SERVICE_ACCOUNT_FILE."""

import json
import os
import sys

import anthropic
import boto3
import openai
from botocore.config import Config
from google import genai
from google.genai import types
from google.oauth2 import service_account

LLM_URL = os.environ["LLM_URL"]
WEATHER = {
    "name": "get_weather",
    "description": "The weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def check_anthropic() -> None:
    client = anthropic.Anthropic(base_url=LLM_URL, api_key="sk-ant-native", max_retries=0)
    message = client.messages.create(
        model="claude-native", max_tokens=64,
        messages=[{"role": "user", "content": "Reply with exactly: native anthropic"}],
    )
    assert message.content[0].text == "native anthropic", message
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0, message
    with client.messages.stream(
        model="claude-native", max_tokens=64,
        messages=[{"role": "user", "content": "Reply with exactly: streamed natively"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "streamed natively", text
    assert final.usage.output_tokens > 0, final
    message = client.messages.create(
        model="claude-native", max_tokens=64, tools=[WEATHER], tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    assert message.stop_reason == "tool_use" and message.content[-1].name == "get_weather", message
    counted = client.messages.count_tokens(
        model="claude-native", system="Be brief.", tools=[WEATHER],
        messages=[{"role": "user", "content": "hello there"}],
    )
    # get_weather (1) + The weather of a city (5) + Be brief. (2) + hello there (2): words are tokens.
    assert counted.input_tokens == 10, counted
    print("anthropic SDK: create, stream and tool use parse the server's Messages API; count_tokens its counting")


def check_openai_responses() -> None:
    client = openai.OpenAI(base_url=f"{LLM_URL}/v1", api_key="sk-native", max_retries=0)
    tools = [{"type": "function", "name": WEATHER["name"], "description": WEATHER["description"],
              "parameters": WEATHER["input_schema"], "strict": False}]
    response = client.responses.create(model="gpt-native", input="Reply with exactly: native responses",
                                       instructions="Be brief.")
    assert response.output_text == "native responses", response
    assert response.status == "completed" and response.object == "response", response
    assert response.usage.output_tokens == 2 and response.usage.input_tokens_details.cached_tokens == 0, response

    called = client.responses.create(model="gpt-native", input="What is the weather in Paris?",
                                     tools=tools, tool_choice="required")
    calls = [item for item in called.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather", called
    assert json.loads(calls[0].arguments) == {"city": "mock city"}, calls[0]

    with client.responses.stream(model="gpt-native", input="Reply with exactly: streamed responses") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    assert [event.sequence_number for event in events] == list(range(len(events))), events
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == "streamed responses" and final.output_text == "streamed responses", (text, final)
    assert final.usage.output_tokens == 2 and final.usage.total_tokens > 2, final.usage
    with client.responses.stream(model="gpt-native", input="Weather in Paris?", tools=tools,
                                 tool_choice="required") as stream:
        final = stream.get_final_response()
    assert json.loads(final.output[0].arguments) == {"city": "mock city"}, final

    # The follow-up answers the stored response's call; the server knows the conversation.
    follow_up = client.responses.create(
        model="gpt-native", previous_response_id=called.id, tools=tools,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}],
    )
    assert follow_up.previous_response_id == called.id and follow_up.output_text, follow_up
    assert follow_up.usage.input_tokens > called.usage.total_tokens, follow_up.usage
    try:
        client.responses.create(model="gpt-native", input="hi", previous_response_id="resp_unknown")
    except openai.BadRequestError as error:
        assert error.code == "previous_response_not_found" and error.param == "previous_response_id", error
    else:
        raise AssertionError("an unknown previous_response_id was accepted")
    print("openai SDK: responses.create, responses.stream, a function call and a previous_response_id "
          "follow-up parse the server's Responses API")


def check_bedrock() -> None:
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=LLM_URL,
        aws_access_key_id=os.environ["AWS_KEY_ID"], aws_secret_access_key=os.environ["AWS_SECRET"],
        config=Config(retries={"max_attempts": 1}),
    )
    model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    answer = client.converse(
        modelId=model,
        messages=[{"role": "user", "content": [{"text": "Reply with exactly: native bedrock"}]}],
        system=[{"text": "Be brief."}], inferenceConfig={"maxTokens": 64},
    )
    assert answer["output"]["message"]["content"][0]["text"] == "native bedrock", answer
    assert answer["stopReason"] == "end_turn" and answer["usage"]["outputTokens"] > 0, answer
    text, events = [], []
    for event in client.converse_stream(
        modelId=model,
        messages=[{"role": "user", "content": [{"text": "Reply with exactly: streamed from bedrock"}]}],
    )["stream"]:
        events.append(next(iter(event)))
        if "contentBlockDelta" in event:
            text.append(event["contentBlockDelta"]["delta"].get("text", ""))
    assert "".join(text) == "streamed from bedrock", text
    assert events[0] == "messageStart" and "messageStop" in events and events[-1] == "metadata", events
    answer = client.converse(
        modelId=model,
        messages=[{"role": "user", "content": [{"text": "Weather in Paris?"}]}],
        toolConfig={"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": WEATHER["input_schema"]}}}],
                    "toolChoice": {"any": {}}},
    )
    assert answer["stopReason"] == "tool_use", answer
    tool_use = answer["output"]["message"]["content"][-1]["toolUse"]
    assert tool_use["name"] == "get_weather" and isinstance(tool_use["input"], dict), tool_use
    # A signature made with another secret is refused as AWS refuses it.
    wrong = boto3.client(
        "bedrock-runtime", region_name="us-east-1", endpoint_url=LLM_URL,
        aws_access_key_id=os.environ["AWS_KEY_ID"], aws_secret_access_key="not-the-secret",
        config=Config(retries={"max_attempts": 1}),
    )
    try:
        wrong.converse(modelId=model, messages=[{"role": "user", "content": [{"text": "x"}]}])
    except wrong.exceptions.ClientError as error:
        assert error.response["Error"]["Code"] == "InvalidSignatureException", error.response
    else:
        raise AssertionError("a wrong signature was accepted")
    print("boto3: converse, converse_stream and tool use signed by botocore and parsed by it")


def check_gemini() -> None:
    http = types.HttpOptions(base_url=LLM_URL)
    client = genai.Client(api_key="gemini-native", http_options=http)
    answer = client.models.generate_content(
        model="gemini-native", contents="Reply with exactly: native gemini",
        config=types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=64),
    )
    assert answer.text == "native gemini", answer
    assert answer.usage_metadata.candidates_token_count > 0, answer
    text = "".join(c.text or "" for c in client.models.generate_content_stream(
        model="gemini-native", contents="Reply with exactly: streamed gemini"))
    assert text == "streamed gemini", text

    credentials = service_account.Credentials.from_service_account_file(
        os.environ["SERVICE_ACCOUNT_FILE"], scopes=["https://www.googleapis.com/auth/cloud-platform"])
    vertex = genai.Client(vertexai=True, project="agw-test-project", location="us-central1",
                          credentials=credentials, http_options=http)
    answer = vertex.models.generate_content(model="gemini-2.0-flash", contents="Reply with exactly: on vertex")
    assert answer.text == "on vertex", answer
    assert credentials.token, "google-auth obtained a token from the server's /token"
    print("google-genai: generate_content and its stream, on the Gemini API and on Vertex AI "
          "with google-auth's JWT-bearer grant")


def main() -> int:
    check_openai_responses()
    check_anthropic()
    check_bedrock()
    check_gemini()
    return 0


if __name__ == "__main__":
    sys.exit(main())
