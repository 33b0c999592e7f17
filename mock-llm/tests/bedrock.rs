mod common;

use std::time::{Duration, Instant, SystemTime};

use agentgateway_mock_llm::{
    AwsCredentials, BEDROCK_SIGNING_NAME, BedrockCall, Credential, DEFAULT_REPLY, Fault, MockLlm,
    MockLlmConfig,
};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SigningParams, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use common::{Client, Frame, bedrock_path, converse, event_stream};
use serde_json::{Value, json};

const ARN: &str = "arn:aws:bedrock:eu-west-3:123456789012:inference-profile/eu.anthropic.claude-3-5-sonnet-20240620-v1:0";
const MODEL: &str = "amazon.nova-lite-v1:0";
const ERRORTYPE_SUFFIX: &str = ":http://internal.amazon.com/coral/com.amazon.bedrock/";

async fn start() -> MockLlm {
    MockLlm::start(MockLlmConfig::default())
        .await
        .expect("start mock-llm")
}

async fn start_signed(creds: AwsCredentials) -> MockLlm {
    MockLlm::start(MockLlmConfig {
        aws: Some(creds),
        ..Default::default()
    })
    .await
    .expect("start mock-llm")
}

fn creds() -> AwsCredentials {
    AwsCredentials::new("AKIDMOCKLLMTEST", "mock/secret+key")
}

fn body_of(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serialize")
}

/// Signs a request the way the AWS SDK does for bedrock-runtime (default settings, the body
/// bytes), for the headers `Client::post_bytes` sends: `Host: mock`, the content type and length.
fn sign_headers(
    creds: &AwsCredentials,
    region: &str,
    path: &str,
    body: &[u8],
    at: SystemTime,
) -> Vec<(String, String)> {
    let length = body.len().to_string();
    let headers = [
        ("content-type", "application/json"),
        ("content-length", length.as_str()),
    ];
    let request = SignableRequest::new(
        "POST",
        format!("http://mock{path}"),
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .expect("a signable request");
    let identity: Identity = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        creds.session_token.clone(),
        None,
        "test",
    )
    .into();
    let params: SigningParams<'_> = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(BEDROCK_SIGNING_NAME)
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .expect("complete signing params")
        .into();
    let (instructions, _) = sign(request, &params).expect("signed").into_parts();
    instructions
        .headers()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

async fn post_signed(
    client: &mut Client,
    path: &str,
    body: &[u8],
    signed: &[(String, String)],
) -> common::Response {
    let headers: Vec<(&str, &str)> = signed
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    client
        .post_bytes(path, "application/json", body, &headers)
        .await
        .expect("a response")
}

/// Asserts Bedrock's error shape and returns the message.
fn bedrock_error(resp: &common::Response, status: u16, exception: &str) -> String {
    assert_eq!(
        resp.status,
        status,
        "{}",
        String::from_utf8_lossy(&resp.body)
    );
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let errortype = resp.header("x-amzn-errortype").expect("x-amzn-errortype");
    assert_eq!(errortype.split(':').next(), Some(exception), "{errortype}");
    assert!(resp.header("x-amzn-requestid").is_some());
    let v = resp.json();
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    v["message"].as_str().expect("message").to_owned()
}

fn weather_tools() -> Value {
    json!({"tools": [
        {"toolSpec": {"name": "get_weather", "description": "Get the current weather",
            "inputSchema": {"json": {"type": "object", "required": ["location"], "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}}}},
        {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object"}}}},
    ]})
}

fn kinds(frames: &[Frame]) -> Vec<&str> {
    frames.iter().map(Frame::kind).collect()
}

#[tokio::test]
async fn converse_answers_text_in_bedrocks_shape_and_records_the_model() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = json!({
        "system": [{"text": "be brief"}],
        "messages": [
            {"role": "user", "content": [{"text": "earlier question"}]},
            {"role": "assistant", "content": [{"text": "earlier answer"}]},
            {"role": "user", "content": [{"text": "hello there"}]},
        ],
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.2},
    });
    let path = bedrock_path(ARN, "converse");
    assert!(path.contains("%3A") && path.contains("%2F"), "{path}");
    let resp = client.post(&path, &body, &[]).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert!(resp.header("x-amzn-requestid").is_some());
    let mut v = resp.json();
    assert!(v["metrics"]["latencyMs"].is_u64(), "{v}");
    v["metrics"]["latencyMs"] = json!(0);
    assert_eq!(
        v,
        json!({
            "output": {"message": {"role": "assistant", "content": [{"text": DEFAULT_REPLY}]}},
            "stopReason": "end_turn",
            // be brief(2) + earlier question(2) + earlier answer(2) + hello there(2).
            "usage": {"inputTokens": 8, "outputTokens": 7, "totalTokens": 15,
                      "cacheReadInputTokens": 0, "cacheWriteInputTokens": 0},
            "metrics": {"latencyMs": 0},
        })
    );

    let recorded = server.requests();
    assert_eq!(recorded[0].path, path);
    assert_eq!(
        recorded[0].bedrock,
        Some(BedrockCall {
            model_id: ARN.to_owned(),
            operation: "converse".to_owned(),
            region: None,
            access_key_id: None,
        })
    );
    assert_eq!(recorded[0].credential, None);
    assert_eq!(recorded[0].json().unwrap(), body);
}

#[tokio::test]
async fn the_reply_rules_are_the_anthropic_endpoints() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let path = bedrock_path(MODEL, "converse");

    let resp = client
        .post(
            &path,
            &converse("Reply with exactly: one two three four"),
            &[],
        )
        .await
        .unwrap();
    let v = resp.json();
    assert_eq!(
        v["output"]["message"]["content"][0]["text"],
        "one two three four"
    );

    let mut capped = converse("Reply with exactly: one two three four");
    capped["inferenceConfig"] = json!({"maxTokens": 2});
    let v = client.post(&path, &capped, &[]).await.unwrap().json();
    assert_eq!(v["output"]["message"]["content"][0]["text"], "one two");
    assert_eq!(v["stopReason"], "max_tokens");
    assert_eq!(v["usage"]["outputTokens"], 2);

    capped["inferenceConfig"] = json!({"stopSequences": [" three"]});
    let v = client.post(&path, &capped, &[]).await.unwrap().json();
    assert_eq!(v["output"]["message"]["content"][0]["text"], "one two");
    assert_eq!(v["stopReason"], "stop_sequence");

    // A cache point: the prefix before it is read from the cache.
    let cached = json!({
        "system": [{"text": "a long shared prefix"}, {"cachePoint": {"type": "default"}}],
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
    });
    let v = client.post(&path, &cached, &[]).await.unwrap().json();
    assert_eq!(
        v["usage"],
        json!({"inputTokens": 1, "outputTokens": 7, "totalTokens": 12,
               "cacheReadInputTokens": 4, "cacheWriteInputTokens": 0})
    );
}

#[tokio::test]
async fn tool_use_follows_the_weather_rule_and_forced_choices() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let path = bedrock_path(MODEL, "converse");
    let mut body = converse("What's the weather in Paris?");
    body["toolConfig"] = weather_tools();
    let v = client.post(&path, &body, &[]).await.unwrap().json();
    assert_eq!(v["stopReason"], "tool_use");
    let content = v["output"]["message"]["content"].as_array().unwrap();
    assert_eq!(content[0], json!({"text": DEFAULT_REPLY}));
    let tool_use = &content[1]["toolUse"];
    assert!(
        tool_use["toolUseId"]
            .as_str()
            .unwrap()
            .starts_with("tooluse_mock_")
    );
    assert_eq!(tool_use["name"], "get_weather");
    assert_eq!(
        tool_use["input"],
        json!({"location": "mock location", "unit": "celsius"})
    );

    // A forced choice: the call alone.
    body["messages"][0]["content"][0]["text"] = json!("hello");
    body["toolConfig"]["toolChoice"] = json!({"tool": {"name": "get_time"}});
    let v = client.post(&path, &body, &[]).await.unwrap().json();
    let content = v["output"]["message"]["content"].as_array().unwrap();
    assert_eq!(content.len(), 1, "{v}");
    assert_eq!(content[0]["toolUse"]["name"], "get_time");
    assert_eq!(content[0]["toolUse"]["input"], json!({}));

    // The tool's result comes back in the next user turn; the model then answers in text.
    let id = content[0]["toolUse"]["toolUseId"].clone();
    let follow_up = json!({
        "toolConfig": weather_tools(),
        "messages": [
            {"role": "user", "content": [{"text": "hello"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": id, "name": "get_time",
                                                           "input": {}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": id,
                "content": [{"json": {"time": "noon"}}], "status": "success"}}]},
        ],
    });
    let v = client.post(&path, &follow_up, &[]).await.unwrap().json();
    assert_eq!(v["stopReason"], "end_turn", "{v}");
}

#[tokio::test]
async fn malformed_requests_are_validation_exceptions() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let path = bedrock_path(MODEL, "converse");
    let mut with_model = converse("hi");
    with_model["model"] = json!(MODEL);
    let cases = [
        (json!({}), "A conversation must start with a user message"),
        (
            json!({"messages": [{"role": "system", "content": [{"text": "x"}]}]}),
            "Member must satisfy enum value set: [user, assistant]",
        ),
        (with_model, "extraneous key [model] is not permitted"),
        (
            json!({"messages": [{"role": "user", "content": [{"text": ""}]}]}),
            "is blank",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            "'messages.0.member.content'",
        ),
    ];
    for (body, expected) in cases {
        let resp = client.post(&path, &body, &[]).await.unwrap();
        let msg = bedrock_error(&resp, 400, "ValidationException");
        assert!(msg.contains(expected), "{body}: {msg}");
        assert!(
            resp.header("x-amzn-errortype")
                .unwrap()
                .ends_with(ERRORTYPE_SUFFIX)
        );
    }
    let resp = client
        .post_bytes(&path, "application/json", b"{not json", &[])
        .await
        .unwrap();
    bedrock_error(&resp, 400, "SerializationException");
    let resp = client
        .post(
            &bedrock_path(MODEL, "invoke-with-response-stream"),
            &converse("hi"),
            &[],
        )
        .await
        .unwrap();
    bedrock_error(&resp, 404, "UnknownOperationException");
}

#[tokio::test]
async fn converse_stream_sends_the_documented_event_sequence() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let path = bedrock_path(ARN, "converse-stream");
    let resp = client
        .post(
            &path,
            &converse("Reply with exactly: Hello from Bedrock"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.complete);
    assert_eq!(
        resp.header("content-type"),
        Some("application/vnd.amazon.eventstream")
    );
    assert!(resp.header("x-amzn-requestid").is_some());
    let frames = event_stream(&resp.body);
    assert_eq!(
        kinds(&frames),
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    // One HTTP chunk per event, as a real stream arrives.
    assert_eq!(resp.chunks.len(), frames.len());
    for f in &frames {
        assert_eq!(f.header(":message-type"), Some("event"));
        assert_eq!(f.header(":content-type"), Some("application/json"));
    }
    assert_eq!(frames[0].payload, json!({"role": "assistant"}));
    let text: String = frames[1..4]
        .iter()
        .map(|f| {
            assert_eq!(f.payload["contentBlockIndex"], 0);
            f.payload["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "Hello from Bedrock");
    assert_eq!(frames[4].payload, json!({"contentBlockIndex": 0}));
    assert_eq!(frames[5].payload, json!({"stopReason": "end_turn"}));
    let metadata = &frames[6].payload;
    assert_eq!(
        metadata["usage"],
        json!({"inputTokens": 6, "outputTokens": 3, "totalTokens": 9,
               "cacheReadInputTokens": 0, "cacheWriteInputTokens": 0})
    );
    assert!(metadata["metrics"]["latencyMs"].is_u64());
    assert_eq!(
        server.requests()[0]
            .bedrock
            .as_ref()
            .map(|b| b.operation.as_str()),
        Some("converse-stream")
    );
}

#[tokio::test]
async fn converse_stream_tool_use_streams_the_input_json() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let mut body = converse("hello");
    body["toolConfig"] = weather_tools();
    body["toolConfig"]["toolChoice"] = json!({"any": {}});
    let resp = client
        .post(&bedrock_path(MODEL, "converse-stream"), &body, &[])
        .await
        .unwrap();
    let frames = event_stream(&resp.body);
    let kinds = kinds(&frames);
    assert_eq!(kinds[..2], ["messageStart", "contentBlockStart"]);
    assert_eq!(
        kinds[kinds.len() - 3..],
        ["contentBlockStop", "messageStop", "metadata"]
    );
    let start = &frames[1].payload;
    assert_eq!(start["contentBlockIndex"], 0);
    assert_eq!(start["start"]["toolUse"]["name"], "get_weather");
    assert!(
        start["start"]["toolUse"]["toolUseId"]
            .as_str()
            .unwrap()
            .starts_with("tooluse_mock_")
    );
    let deltas = &frames[2..frames.len() - 3];
    assert!(deltas.len() > 1, "the input arrives in several pieces");
    let input: String = deltas
        .iter()
        .map(|f| {
            assert_eq!(f.kind(), "contentBlockDelta");
            f.payload["delta"]["toolUse"]["input"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let input: Value = serde_json::from_str(&input).unwrap();
    assert_eq!(
        input,
        json!({"location": "mock location", "unit": "celsius"})
    );
    assert_eq!(
        frames[frames.len() - 2].payload,
        json!({"stopReason": "tool_use"})
    );
}

#[tokio::test]
async fn chunk_delay_paces_the_event_stream() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let began = Instant::now();
    let resp = client
        .post(
            &bedrock_path(MODEL, "converse-stream"),
            &converse("Reply with exactly: a b c"),
            &[("x-mock-fault", "chunk-delay-ms=30")],
        )
        .await
        .unwrap();
    // messageStart, 3 deltas, stop, messageStop, metadata: 6 gaps.
    assert_eq!(event_stream(&resp.body).len(), 7);
    assert!(
        began.elapsed() >= Duration::from_millis(180),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test]
async fn status_faults_answer_in_bedrocks_error_shape() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let path = bedrock_path(MODEL, "converse");
    for (status, exception) in [
        (400, "ValidationException"),
        (403, "AccessDeniedException"),
        (404, "ResourceNotFoundException"),
        (424, "ModelErrorException"),
        (429, "ThrottlingException"),
        (500, "InternalServerException"),
        (503, "ServiceUnavailableException"),
    ] {
        server.push_fault(Fault::status(status));
        let resp = client.post(&path, &converse("hi"), &[]).await.unwrap();
        assert_eq!(bedrock_error(&resp, status, exception), "injected fault");
    }
    let spec = "status=429;retry-after=2;body=ModelNotReadyException";
    let resp = client
        .post(&path, &converse("hi"), &[("x-mock-fault", spec)])
        .await
        .unwrap();
    bedrock_error(&resp, 429, "ModelNotReadyException");
    assert_eq!(resp.header("retry-after"), Some("2"));
    // A fault answers instead of the handler, yet the record still describes the call.
    assert_eq!(server.requests().len(), 8);
    assert!(server.requests().iter().all(|r| r.bedrock.is_some()));
}

#[tokio::test]
async fn error_after_ends_the_stream_with_an_exception_frame() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let resp = client
        .post(
            &bedrock_path(MODEL, "converse-stream"),
            &converse("Reply with exactly: a b c d"),
            &[("x-mock-fault", "error-after=2")],
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.complete, "the stream ends cleanly after the exception");
    let frames = event_stream(&resp.body);
    assert_eq!(
        kinds(&frames),
        [
            "messageStart",
            "contentBlockDelta",
            "internalServerException"
        ]
    );
    let exception = &frames[2];
    assert_eq!(exception.header(":message-type"), Some("exception"));
    assert_eq!(exception.header(":content-type"), Some("application/json"));
    assert!(exception.payload["message"].is_string());
    assert_eq!(exception.payload.as_object().map(|o| o.len()), Some(1));

    // cut-after drops the connection mid-stream, without the final chunk.
    let mut client = Client::connect(server.addr()).await;
    let resp = client
        .post(
            &bedrock_path(MODEL, "converse-stream"),
            &converse("Reply with exactly: a b c d"),
            &[("x-mock-fault", "cut-after=3")],
        )
        .await
        .unwrap();
    assert!(!resp.complete);
    assert_eq!(event_stream(&resp.body).len(), 3);
}

#[tokio::test]
async fn a_correctly_signed_request_is_answered_and_its_scope_recorded() {
    let server = start_signed(creds()).await;
    let mut client = Client::connect(server.addr()).await;
    for (op, stream) in [("converse", false), ("converse-stream", true)] {
        let path = bedrock_path(ARN, op);
        let body = body_of(&converse("hi"));
        let signed = sign_headers(&creds(), "eu-west-3", &path, &body, SystemTime::now());
        let resp = post_signed(&mut client, &path, &body, &signed).await;
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
        if stream {
            // messageStart, 7 words, stop, messageStop, metadata.
            assert_eq!(event_stream(&resp.body).len(), 11);
        } else {
            assert_eq!(resp.json()["stopReason"], "end_turn");
        }
    }
    let recorded = server.requests();
    assert_eq!(recorded.len(), 2);
    for r in &recorded {
        assert_eq!(r.credential, Some(Credential::SigV4));
        let call = r.bedrock.as_ref().unwrap();
        assert_eq!(call.model_id, ARN);
        assert_eq!(call.region.as_deref(), Some("eu-west-3"));
        assert_eq!(call.access_key_id.as_deref(), Some("AKIDMOCKLLMTEST"));
        assert!(
            r.header("authorization")
                .unwrap()
                .starts_with("AWS4-HMAC-SHA256 Credential=AKIDMOCKLLMTEST/")
        );
    }
}

#[tokio::test]
async fn bad_signatures_are_403s_named_as_aws_names_them() {
    let server = start_signed(creds()).await;
    let mut client = Client::connect(server.addr()).await;
    let path = bedrock_path(ARN, "converse");
    let body = body_of(&converse("hi"));
    let now = SystemTime::now();

    // A body changed after signing.
    let signed = sign_headers(&creds(), "eu-west-3", &path, &body, now);
    let tampered = body_of(&converse("ho"));
    let resp = post_signed(&mut client, &path, &tampered, &signed).await;
    let msg = bedrock_error(&resp, 403, "InvalidSignatureException");
    assert!(
        msg.starts_with(
            "The request signature we calculated does not match the signature you provided."
        ),
        "{msg}"
    );
    assert!(
        resp.header("x-amzn-errortype")
            .unwrap()
            .ends_with(":http://internal.amazon.com/coral/com.amazon.coral.service/")
    );

    // Another path than the one signed (the model id is part of the signature).
    let other = bedrock_path(MODEL, "converse");
    let resp = post_signed(&mut client, &other, &body, &signed).await;
    bedrock_error(&resp, 403, "InvalidSignatureException");

    // The right key id with the wrong secret.
    let mut wrong_secret = creds();
    wrong_secret.secret_access_key = "not-the-secret".into();
    let signed = sign_headers(&wrong_secret, "eu-west-3", &path, &body, now);
    let resp = post_signed(&mut client, &path, &body, &signed).await;
    bedrock_error(&resp, 403, "InvalidSignatureException");

    // An unknown key id.
    let stranger = AwsCredentials::new("AKIDSTRANGER", "x");
    let signed = sign_headers(&stranger, "eu-west-3", &path, &body, now);
    let resp = post_signed(&mut client, &path, &body, &signed).await;
    let msg = bedrock_error(&resp, 403, "UnrecognizedClientException");
    assert_eq!(
        msg,
        "The security token included in the request is invalid."
    );

    // Signed for another service.
    let signed = sign_headers(&creds(), "eu-west-3", &path, &body, now);
    let forged: Vec<(String, String)> = signed
        .into_iter()
        .map(|(n, v)| (n, v.replace("/bedrock/", "/s3/")))
        .collect();
    let resp = post_signed(&mut client, &path, &body, &forged).await;
    let msg = bedrock_error(&resp, 403, "InvalidSignatureException");
    assert!(msg.contains("'bedrock'"), "{msg}");

    // Signed too long ago.
    let stale = now - Duration::from_secs(600);
    let signed = sign_headers(&creds(), "eu-west-3", &path, &body, stale);
    let resp = post_signed(&mut client, &path, &body, &signed).await;
    let msg = bedrock_error(&resp, 403, "InvalidSignatureException");
    assert!(msg.starts_with("Signature expired"), "{msg}");

    // No signature at all.
    let resp = client.post(&path, &converse("hi"), &[]).await.unwrap();
    let msg = bedrock_error(&resp, 403, "MissingAuthenticationTokenException");
    assert_eq!(msg, "Missing Authentication Token");

    // The streaming route checks too.
    let stream_path = bedrock_path(ARN, "converse-stream");
    let resp = post_signed(&mut client, &stream_path, &tampered, &[]).await;
    bedrock_error(&resp, 403, "MissingAuthenticationTokenException");

    assert!(server.requests().iter().all(|r| r.credential.is_none()));
}

#[tokio::test]
async fn temporary_credentials_need_their_session_token() {
    let temporary = creds().with_session_token("FwoGZXIvYXdzEMock//token");
    let server = start_signed(temporary.clone()).await;
    let mut client = Client::connect(server.addr()).await;
    let path = bedrock_path(MODEL, "converse");
    let body = body_of(&converse("hi"));
    let now = SystemTime::now();

    let signed = sign_headers(&temporary, "us-east-1", &path, &body, now);
    assert!(signed.iter().any(|(n, _)| n == "x-amz-security-token"));
    let resp = post_signed(&mut client, &path, &body, &signed).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));

    // Signed with the long-term key alone: no token.
    let signed = sign_headers(&creds(), "us-east-1", &path, &body, now);
    let resp = post_signed(&mut client, &path, &body, &signed).await;
    bedrock_error(&resp, 403, "UnrecognizedClientException");

    // The token dropped from a correctly signed request.
    let mut dropped = sign_headers(&temporary, "us-east-1", &path, &body, now);
    dropped.retain(|(n, _)| n != "x-amz-security-token");
    let resp = post_signed(&mut client, &path, &body, &dropped).await;
    bedrock_error(&resp, 403, "UnrecognizedClientException");
}

#[tokio::test]
async fn without_credentials_nothing_is_checked_but_the_scope_is_recorded() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let path = bedrock_path(MODEL, "converse");
    let body = body_of(&converse("hi"));
    let anyone = AwsCredentials::new("AKIDANYONE", "whatever");
    let signed = sign_headers(&anyone, "ap-south-1", &path, &body, SystemTime::now());
    let resp = post_signed(&mut client, &path, &body, &signed).await;
    assert_eq!(resp.status, 200);
    let r = &server.requests()[0];
    assert_eq!(r.credential, Some(Credential::SigV4));
    let call = r.bedrock.as_ref().unwrap();
    assert_eq!(call.region.as_deref(), Some("ap-south-1"));
    assert_eq!(call.access_key_id.as_deref(), Some("AKIDANYONE"));
}

const TITAN: &str = "amazon.titan-embed-text-v2:0";

#[tokio::test]
async fn titan_invoke_embeds_one_text_signed_as_converse_is() {
    let creds = creds();
    let server = start_signed(creds.clone()).await;
    let mut client = Client::connect(server.addr()).await;
    let path = bedrock_path(TITAN, "invoke");
    let body = body_of(&json!({"inputText": "hello world", "dimensions": 256, "normalize": true}));
    let signed = sign_headers(&creds, "us-east-1", &path, &body, SystemTime::now());
    let resp = post_signed(&mut client, &path, &body, &signed).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let v = resp.json();
    assert_eq!(v["embedding"].as_array().unwrap().len(), 256);
    assert_eq!(v["inputTextTokenCount"], 2);
    assert!(v.get("embeddingsByType").is_none());
    assert_eq!(resp.header("x-amzn-bedrock-input-token-count"), Some("2"));
    assert!(resp.header("x-amzn-requestid").is_some());
    let recorded = &server.requests()[0];
    assert_eq!(recorded.credential, Some(Credential::SigV4));
    assert_eq!(
        recorded
            .bedrock
            .as_ref()
            .map(|c| (c.model_id.as_str(), c.operation.as_str())),
        Some((TITAN, "invoke"))
    );

    // Unsigned: refused as Converse is.
    let resp = client
        .post_bytes(&path, "application/json", &body, &[])
        .await
        .expect("a response");
    bedrock_error(&resp, 403, "MissingAuthenticationTokenException");
}

#[tokio::test]
async fn titan_invoke_validates_the_models_schema() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let path = bedrock_path(TITAN, "invoke");
    // Eight values by default, the OpenAI route's vector; the types asked for.
    let body = json!({"inputText": "hello world", "embeddingTypes": ["float", "binary"]});
    let resp = client.post(&path, &body, &[]).await.unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let v = resp.json();
    let openai = client
        .post("/v1/embeddings", &json!({"input": "hello world"}), &[])
        .await
        .unwrap();
    assert_eq!(v["embedding"], openai.json()["data"][0]["embedding"]);
    assert_eq!(v["embeddingsByType"]["float"], v["embedding"]);
    assert_eq!(v["embeddingsByType"]["binary"].as_array().unwrap().len(), 8);

    let v1 = bedrock_path("amazon.titan-embed-text-v1", "invoke");
    for (path, body, needle) in [
        (
            &path,
            json!({"texts": ["a"]}),
            "#: extraneous key [texts] is not permitted",
        ),
        (
            &path,
            json!({"dimensions": 256}),
            "#: required key [inputText] not found",
        ),
        (
            &path,
            json!({"inputText": "x", "dimensions": 100}),
            "#/dimensions: 100 is not a valid enum value",
        ),
        (
            &v1,
            json!({"inputText": "x", "dimensions": 256}),
            "#: extraneous key [dimensions]",
        ),
        (
            &bedrock_path(MODEL, "invoke"),
            json!({"inputText": "x"}),
            "Titan Text Embeddings models only",
        ),
    ] {
        let resp = client.post(path, &body, &[]).await.unwrap();
        let msg = bedrock_error(&resp, 400, "ValidationException");
        assert!(msg.contains(needle), "{msg}");
    }
    server.push_fault(Fault::status(429));
    let resp = client
        .post(&path, &json!({"inputText": "x"}), &[])
        .await
        .unwrap();
    bedrock_error(&resp, 429, "ThrottlingException");
}
