"""The providers' own SDKs against the test LLM server (no gateway in between), so that what the
gateway's tests rely on is the providers' real shapes, not our reading of their docs:

* anthropic: messages.create and messages.stream parse the server's Messages API (text and tool use);
* boto3 bedrock-runtime: converse and converse_stream are signed by botocore's own SigV4 signer
  (the server verifies it) and parse the server's binary event stream;
* google-genai: generate_content and its stream parse the server's Gemini API; in Vertex AI mode,
  google-auth's service-account credentials make the JWT-bearer grant at the server's /token and
  call the publisher model routes with the token.

Run by scripts/sdk-test.sh with LLM_URL, AWS_KEY_ID, AWS_SECRET and SERVICE_ACCOUNT_FILE."""

import os
import sys

import anthropic
import boto3
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
    print("anthropic SDK: create, stream and tool use parse the server's Messages API")


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
    check_anthropic()
    check_bedrock()
    check_gemini()
    return 0


if __name__ == "__main__":
    sys.exit(main())
