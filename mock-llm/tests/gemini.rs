mod common;

use agentgateway_mock_llm::{Credential, DEFAULT_REPLY, Fault, MockLlm, MockLlmConfig};
use common::{Client, GEMINI, GEMINI_KEY, GEMINI_SSE, gemini};
use serde_json::{Value, json};

const GEMINI_ARRAY: &str = "/v1beta/models/gemini-test:streamGenerateContent";

async fn start() -> MockLlm {
    MockLlm::start(MockLlmConfig::default())
        .await
        .expect("start mock-llm")
}

fn weather_tools() -> Value {
    json!([{"functionDeclarations": [
        {"name": "get_weather", "description": "Get the current weather in a location",
         "parameters": {"type": "OBJECT", "required": ["location"], "properties": {
             "location": {"type": "STRING", "description": "City and state"},
             "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"]}}}},
        {"name": "get_time", "description": "Get the time",
         "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}},
    ]}])
}

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

/// Asserts Google's error shape (`code`, `message`, `status` only) and returns the message.
fn google_error(resp: &common::Response, code: u16, status: &str) -> String {
    assert_eq!(resp.status, code);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json();
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(v["error"]["status"], status, "{v}");
    assert_eq!(v["error"].as_object().map(|o| o.len()), Some(3), "{v}");
    v["error"]["message"].as_str().expect("message").to_owned()
}

/// The concatenated non-thought text of the first candidate, over chunks.
fn text_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .flat_map(|c| c["candidates"][0]["content"]["parts"].as_array().cloned())
        .flatten()
        .filter(|p| p["thought"] != true)
        .filter_map(|p| p["text"].as_str().map(str::to_owned))
        .collect()
}

fn without_response_id(mut chunks: Vec<Value>) -> Vec<Value> {
    for c in &mut chunks {
        c.as_object_mut().map(|o| o.remove("responseId"));
    }
    chunks
}

#[tokio::test]
async fn non_stream_reply_has_the_generate_content_shape_and_is_recorded() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = json!({
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "earlier question"}]},
            {"role": "model", "parts": [{"text": "earlier answer"}]},
            {"role": "user", "parts": [{"text": "hello"}, {"text": "there"}]},
        ],
        "generationConfig": {"temperature": 0.7, "maxOutputTokens": 100},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT",
                            "threshold": "BLOCK_ONLY_HIGH"}],
    });
    let resp = client.post(GEMINI, &body, &GEMINI_KEY).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("x-mock-llm-instance"), Some("mock-llm"));
    let v = resp.json();
    assert!(
        v["responseId"]
            .as_str()
            .unwrap()
            .starts_with("mock-gemini-"),
        "{v}"
    );
    let expected = json!({
        "candidates": [{
            "content": {"parts": [{"text": DEFAULT_REPLY}], "role": "model"},
            "finishReason": "STOP",
            "index": 0,
        }],
        // be brief(2) + earlier question(2) + earlier answer(2) + hello(1) + there(1).
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 7,
                          "totalTokenCount": 15,
                          "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}]},
        "modelVersion": "gemini-test",
        "responseId": v["responseId"],
    });
    assert_eq!(v, expected);

    let recorded = server.requests();
    assert_eq!(recorded[0].path, GEMINI);
    assert_eq!(recorded[0].header("x-goog-api-key"), Some("AIza-test-key"));
    assert_eq!(recorded[0].credential, Some(Credential::GoogApiKey));
    assert_eq!(recorded[0].json().unwrap(), body);
}

#[tokio::test]
async fn keys_come_from_the_header_the_query_or_a_bearer_token() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = gemini("hi");

    let resp = client.post(GEMINI, &body, &[]).await.unwrap();
    let msg = google_error(&resp, 403, "PERMISSION_DENIED");
    assert!(
        msg.starts_with("Method doesn't allow unregistered callers"),
        "{msg}"
    );

    let resp = client
        .post(GEMINI, &body, &[("x-goog-api-key", "")])
        .await
        .unwrap();
    let msg = google_error(&resp, 400, "INVALID_ARGUMENT");
    assert_eq!(msg, "API key not valid. Please pass a valid API key.");

    let resp = client
        .post(GEMINI, &body, &[("authorization", "Basic dXNlcg==")])
        .await
        .unwrap();
    let msg = google_error(&resp, 401, "UNAUTHENTICATED");
    assert!(
        msg.starts_with("Request had invalid authentication credentials"),
        "{msg}"
    );

    let query = "/v1/models/gemini-test:generateContent?key=AIza-q";
    assert_eq!(client.post(query, &body, &[]).await.unwrap().status, 200);
    let bearer = [("Authorization", "Bearer ya29.token")];
    assert_eq!(
        client.post(GEMINI, &body, &bearer).await.unwrap().status,
        200
    );
    let both = [GEMINI_KEY[0], bearer[0]];
    let resp = client
        .post(&format!("{GEMINI_SSE}&key=q"), &body, &both)
        .await
        .unwrap();
    assert_eq!(resp.status, 200);

    let credentials: Vec<_> = server.requests().iter().map(|r| r.credential).collect();
    assert_eq!(
        credentials,
        [
            None,
            None,
            None,
            Some(Credential::QueryKey),
            Some(Credential::Bearer),
            Some(Credential::GoogApiKey),
        ]
    );
}

#[tokio::test]
async fn sse_stream_uses_crlf_events_whose_text_matches_the_non_stream_reply() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = gemini("Reply with exactly: Hello big world");
    let whole = client
        .post(GEMINI, &body, &GEMINI_KEY)
        .await
        .unwrap()
        .json();
    let resp = client.post(GEMINI_SSE, &body, &GEMINI_KEY).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert!(resp.complete);
    let raw = String::from_utf8(resp.body.clone()).unwrap();
    assert!(
        raw.starts_with("data: {") && raw.ends_with("}\r\n\r\n"),
        "{raw:?}"
    );
    assert!(!raw.contains("[DONE]"), "Gemini streams have no [DONE]");
    let chunks = resp.sse_crlf_json();
    assert_eq!(chunks.len(), 3, "one word per chunk");
    assert_eq!(resp.chunks.len(), chunks.len(), "one HTTP chunk per event");
    assert_eq!(text_of(&chunks), "Hello big world");
    assert_eq!(text_of(&chunks), text_of(std::slice::from_ref(&whole)));

    let id = &chunks[0]["responseId"];
    assert!(
        chunks
            .iter()
            .all(|c| c["responseId"] == *id && c["modelVersion"] == "gemini-test")
    );
    // Earlier chunks: the prompt count only, and no finish reason.
    let prompt_only = json!({"promptTokenCount": 6, "totalTokenCount": 6,
                             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 6}]});
    for chunk in &chunks[..2] {
        assert_eq!(chunk["usageMetadata"], prompt_only);
        assert_eq!(chunk["candidates"][0].get("finishReason"), None);
        assert_eq!(chunk["candidates"][0]["content"]["role"], "model");
    }
    assert_eq!(
        chunks[1]["candidates"][0]["content"]["parts"],
        json!([{"text": " big"}])
    );
    let last = &chunks[2];
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"], whole["usageMetadata"]);
    assert_eq!(whole["usageMetadata"]["candidatesTokenCount"], 3);
}

#[tokio::test]
async fn without_alt_sse_the_stream_is_one_json_array_of_the_same_chunks() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = gemini("Reply with exactly: one two three four");
    let sse = client
        .post(GEMINI_SSE, &body, &GEMINI_KEY)
        .await
        .unwrap()
        .sse_crlf_json();
    let resp = client.post(GEMINI_ARRAY, &body, &GEMINI_KEY).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert!(resp.complete);
    assert_eq!(resp.chunks.len(), 4, "sent element by element");
    assert!(resp.body.starts_with(b"[{") && resp.body.ends_with(b"}]"));
    let array = resp.json();
    let array = array.as_array().expect("a JSON array").clone();
    assert_eq!(without_response_id(array), without_response_id(sse));
}

#[tokio::test]
async fn function_calls_follow_the_mode_and_the_weather_rule() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = with(
        gemini("What is the weather in Paris?"),
        "tools",
        weather_tools(),
    );
    let v = client
        .post(GEMINI, &body, &GEMINI_KEY)
        .await
        .unwrap()
        .json();
    let candidate = &v["candidates"][0];
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(
        candidate["content"],
        json!({"parts": [{"functionCall": {"name": "get_weather",
               "args": {"location": "mock location", "unit": "celsius"}}}],
               "role": "model"})
    );
    // 1 + ceil(len(`{"location":"mock location","unit":"celsius"}`) / 4).
    assert_eq!(
        v["usageMetadata"]["candidatesTokenCount"],
        1 + 45_u32.div_ceil(4)
    );

    // Streamed, the call comes whole in one chunk with the finish reason.
    let chunks = client
        .post(GEMINI_SSE, &body, &GEMINI_KEY)
        .await
        .unwrap()
        .sse_crlf_json();
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0]["candidates"][0]["content"], candidate["content"]);
    assert_eq!(chunks[0]["usageMetadata"], v["usageMetadata"]);

    // NONE, or no weather in AUTO: text.
    let none = with(
        body.clone(),
        "toolConfig",
        json!({"functionCallingConfig": {"mode": "NONE"}}),
    );
    let v = client
        .post(GEMINI, &none, &GEMINI_KEY)
        .await
        .unwrap()
        .json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"],
        json!([{"text": DEFAULT_REPLY}])
    );
    let auto = with(gemini("hello"), "tools", weather_tools());
    let v = client
        .post(GEMINI, &auto, &GEMINI_KEY)
        .await
        .unwrap()
        .json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        DEFAULT_REPLY
    );

    // ANY with allowed names calls the first allowed function.
    let any = with(
        auto,
        "toolConfig",
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}}),
    );
    let v = client.post(GEMINI, &any, &GEMINI_KEY).await.unwrap().json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"],
        json!([{"functionCall": {"name": "get_time", "args": {"tz": "mock tz"}}}])
    );

    // A function response closes the loop: text comes back.
    let follow_up = json!({
        "tools": weather_tools(),
        "contents": [
            {"role": "user", "parts": [{"text": "weather in Paris?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather",
                                                          "args": {"location": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                        "response": {"forecast": "sunny"}}}]},
        ],
    });
    let v = client
        .post(GEMINI, &follow_up, &GEMINI_KEY)
        .await
        .unwrap()
        .json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"],
        json!([{"text": DEFAULT_REPLY}])
    );
}

#[tokio::test]
async fn invalid_requests_are_400s_naming_the_field() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let cases = [
        (
            json!({}),
            "* GenerateContentRequest.contents: contents is not specified\n",
        ),
        (
            json!({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}),
            "* GenerateContentRequest.contents[0].role: Please use a valid role: user, model.\n",
        ),
        (
            json!({"contents": [{"role": "user", "parts": [{}]}]}),
            "* GenerateContentRequest.contents[0].parts[0].data: required oneof field 'data' \
             must have one initialized field\n",
        ),
        (
            json!({"contents": [{"parts": [{"inlineData": {"data": "AA=="}}]}]}),
            "* GenerateContentRequest.contents[0].parts[0].inline_data.mime_type: mime_type is \
             not specified\n",
        ),
        (
            json!({"contents": [{"role": "model", "parts": [
                {"functionCall": {"name": "f", "args": {}}}]}]}),
            "* GenerateContentRequest.contents[0]: Please ensure that function call turn comes \
             immediately after a user turn or after a function response turn.\n",
        ),
        (
            with(gemini("hi"), "generationConfig", json!({"temperature": 3})),
            "* GenerateContentRequest.generation_config.temperature: temperature must be in \
             the range [0.0, 2.0].\n",
        ),
        (
            with(
                gemini("hi"),
                "generationConfig",
                json!({"candidateCount": 9}),
            ),
            "* GenerateContentRequest.generation_config.candidate_count: candidate_count must \
             be in the range [1, 8].\n",
        ),
        (
            with(
                gemini("hi"),
                "tools",
                json!([{"functionDeclarations": [{"name": "1bad"}]}]),
            ),
            "* GenerateContentRequest.tools[0].function_declarations[0].name: Invalid function \
             name. Must start with a letter or an underscore. Must be a-z, A-Z, 0-9, or contain \
             underscores, dots, colons and dashes, with a maximum length of 64.\n",
        ),
        (
            with(
                gemini("hi"),
                "toolConfig",
                json!({"functionCallingConfig": {"mode": "ANY"}}),
            ),
            "* GenerateContentRequest.tool_config.function_calling_config.mode: function \
             calling mode ANY or VALIDATED requires function_declarations in tools.\n",
        ),
        (
            with(
                gemini("hi"),
                "safetySettings",
                json!([{"category": "HARM_CATEGORY_HARASSMENT",
                                                         "threshold": "BLOCK_SOME"}]),
            ),
            "Invalid value at 'safety_settings[0].threshold' \
             (type.googleapis.com/google.ai.generativelanguage.v1beta.SafetySetting.\
             HarmBlockThreshold), \"BLOCK_SOME\"",
        ),
        (
            with(gemini("hi"), "generation_config", json!({"top_k": "many"})),
            "Invalid value at 'generation_config.top_k' (TYPE_INT32), \"many\"",
        ),
        (
            with(gemini("hi"), "messages", json!([])),
            "Invalid JSON payload received. Unknown name \"messages\": Cannot find field.",
        ),
    ];
    for (body, expected) in cases {
        let resp = client.post(GEMINI, &body, &GEMINI_KEY).await.unwrap();
        assert_eq!(google_error(&resp, 400, "INVALID_ARGUMENT"), expected);
    }

    client
        .send_raw(
            format!(
                "POST {GEMINI} HTTP/1.1\r\nx-goog-api-key: k\r\nContent-Length: 5\r\n\r\n{{bad}}"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let resp = client.read_response().await.unwrap();
    let msg = google_error(&resp, 400, "INVALID_ARGUMENT");
    assert!(msg.starts_with("Invalid JSON payload received."), "{msg}");

    let resp = client
        .post(
            "/v1beta/models/gemini-test:countTokens",
            &gemini("hi"),
            &GEMINI_KEY,
        )
        .await
        .unwrap();
    google_error(&resp, 404, "NOT_FOUND");
}

#[tokio::test]
async fn unsafe_prompts_are_blocked_with_safety_ratings() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = gemini("tell me something unsafe");
    let v = client
        .post(GEMINI, &body, &GEMINI_KEY)
        .await
        .unwrap()
        .json();
    let candidate = &v["candidates"][0];
    assert_eq!(candidate["finishReason"], "SAFETY");
    assert_eq!(candidate.get("content"), None, "no content parts");
    let ratings = candidate["safetyRatings"].as_array().unwrap();
    assert_eq!(ratings.len(), 4);
    let blocked: Vec<&Value> = ratings.iter().filter(|r| r["blocked"] == true).collect();
    assert_eq!(
        blocked,
        [
            &json!({"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH",
                 "blocked": true})
        ]
    );
    assert_eq!(
        v["usageMetadata"],
        json!({"promptTokenCount": 4, "totalTokenCount": 4,
               "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 4}]}),
        "no candidatesTokenCount when nothing was generated"
    );

    // Streamed: a single chunk, the same candidate.
    let chunks = client
        .post(GEMINI_SSE, &body, &GEMINI_KEY)
        .await
        .unwrap()
        .sse_crlf_json();
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0]["candidates"], v["candidates"]);

    // With dangerous content let through, the reply comes.
    let allowed = with(
        body,
        "safetySettings",
        json!([{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "BLOCK_NONE"}]),
    );
    let v = client
        .post(GEMINI, &allowed, &GEMINI_KEY)
        .await
        .unwrap()
        .json();
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");

    // `blockprompt` blocks the prompt itself: feedback, no candidates.
    let v = client
        .post(GEMINI, &gemini("please blockprompt now"), &GEMINI_KEY)
        .await
        .unwrap()
        .json();
    assert_eq!(v.get("candidates"), None, "{v}");
    assert_eq!(v["promptFeedback"]["blockReason"], "SAFETY");
    assert!(v["promptFeedback"]["safetyRatings"].is_array());
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 3);
    assert_eq!(v["usageMetadata"]["totalTokenCount"], 3);
}

#[tokio::test]
async fn usage_reports_cached_thought_and_candidate_tokens() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;

    let cached = with(
        gemini("hi"),
        "cachedContent",
        json!("cachedContents/abc123"),
    );
    let v = client
        .post(GEMINI, &cached, &GEMINI_KEY)
        .await
        .unwrap()
        .json();
    assert_eq!(
        v["usageMetadata"],
        json!({"promptTokenCount": 1025, "candidatesTokenCount": 7, "totalTokenCount": 1032,
               "cachedContentTokenCount": 1024,
               "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1025}]})
    );

    let thinking = with(
        gemini("Reply with exactly: a b c"),
        "generationConfig",
        json!({"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": true},
               "candidateCount": 2}),
    );
    let v = client
        .post(GEMINI, &thinking, &GEMINI_KEY)
        .await
        .unwrap()
        .json();
    let candidates = v["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2);
    for (i, c) in candidates.iter().enumerate() {
        assert_eq!(c["index"], i);
        let parts = c["content"]["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0]["thought"], true);
        assert_eq!(parts[1], json!({"text": "a b c"}));
    }
    let usage = &v["usageMetadata"];
    // Per candidate: 3 text tokens and the 5-word thought.
    assert_eq!(usage["promptTokenCount"], 6);
    assert_eq!(usage["candidatesTokenCount"], 6);
    assert_eq!(usage["thoughtsTokenCount"], 10);
    assert_eq!(usage["totalTokenCount"], 22);
    assert_eq!(usage.get("cachedContentTokenCount"), None);

    // Streamed: the thought first, then the words; the text still matches.
    let chunks = client
        .post(GEMINI_SSE, &thinking, &GEMINI_KEY)
        .await
        .unwrap()
        .sse_crlf_json();
    assert_eq!(chunks.len(), 4);
    assert_eq!(
        chunks[0]["candidates"][1]["content"]["parts"][0]["thought"],
        true
    );
    assert_eq!(text_of(&chunks), "a b c");
    assert_eq!(chunks[3]["usageMetadata"], *usage);

    // Thoughts count against maxOutputTokens; the text gets what is left.
    let capped = with(
        gemini("Reply with exactly: one two three four"),
        "generationConfig",
        json!({"maxOutputTokens": 7, "thinkingConfig": {"thinkingBudget": -1}}),
    );
    let v = client
        .post(GEMINI, &capped, &GEMINI_KEY)
        .await
        .unwrap()
        .json();
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(
        v["candidates"][0]["content"]["parts"],
        json!([{"text": "one two"}]),
        "no thought part without includeThoughts"
    );
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 2);
    assert_eq!(v["usageMetadata"]["thoughtsTokenCount"], 5);

    let capped = with(
        gemini("Reply with exactly: one two three four"),
        "generationConfig",
        json!({"maxOutputTokens": 3}),
    );
    let chunks = client
        .post(GEMINI_SSE, &capped, &GEMINI_KEY)
        .await
        .unwrap()
        .sse_crlf_json();
    assert_eq!(text_of(&chunks), "one two three");
    assert_eq!(
        chunks.last().unwrap()["candidates"][0]["finishReason"],
        "MAX_TOKENS"
    );
}

#[tokio::test]
async fn status_faults_use_googles_error_shape_and_status_names() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    for (status, name) in [
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
    ] {
        server.push_fault(Fault::status(status));
        let resp = client
            .post(GEMINI, &gemini("hi"), &GEMINI_KEY)
            .await
            .unwrap();
        assert_eq!(google_error(&resp, status, name), "injected fault");
    }

    let fault = [GEMINI_KEY[0], ("x-mock-fault", "status=429;retry-after=30")];
    let resp = client
        .post(GEMINI_SSE, &gemini("hi"), &fault)
        .await
        .unwrap();
    google_error(&resp, 429, "RESOURCE_EXHAUSTED");
    assert_eq!(resp.header("retry-after"), Some("30"));

    let fault = [
        GEMINI_KEY[0],
        ("x-mock-fault", "status=400;body=FAILED_PRECONDITION"),
    ];
    let resp = client.post(GEMINI, &gemini("hi"), &fault).await.unwrap();
    google_error(&resp, 400, "FAILED_PRECONDITION");

    // Faults come before the key check.
    server.set_fault(Some(Fault::status(503)));
    let resp = client.post(GEMINI, &gemini("hi"), &[]).await.unwrap();
    google_error(&resp, 503, "UNAVAILABLE");
    server.clear_faults();

    let fault = [GEMINI_KEY[0], ("x-mock-fault", "explode")];
    let resp = client.post(GEMINI, &gemini("hi"), &fault).await.unwrap();
    let msg = google_error(&resp, 400, "INVALID_ARGUMENT");
    assert!(msg.contains("unknown fault"), "{msg}");
}

#[tokio::test]
async fn error_after_and_cut_after_interrupt_gemini_streams() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let unavailable = json!({"error": {"code": 503,
        "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}});

    let fault = [GEMINI_KEY[0], ("x-mock-fault", "error-after=2")];
    let resp = client
        .post(GEMINI_SSE, &gemini("hi"), &fault)
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.complete, "the stream ends cleanly after the error");
    let chunks = resp.sse_crlf_json();
    assert_eq!(chunks.len(), 3);
    assert_eq!(text_of(&chunks[..2]), "This is");
    assert_eq!(chunks[2], unavailable);

    // In array mode the error is the last element of a well-formed array.
    let resp = client
        .post(GEMINI_ARRAY, &gemini("hi"), &fault)
        .await
        .unwrap();
    let array = resp.json();
    let array = array.as_array().unwrap();
    assert_eq!(array.len(), 3);
    assert_eq!(array[2], unavailable);

    // Non-streaming responses are unaffected.
    let resp = client.post(GEMINI, &gemini("hi"), &fault).await.unwrap();
    assert_eq!(resp.status, 200);

    server.push_fault(Fault::CutAfter(2));
    let resp = client
        .post(GEMINI_SSE, &gemini("hi"), &GEMINI_KEY)
        .await
        .unwrap();
    assert!(!resp.complete, "no final zero-length chunk");
    assert_eq!(text_of(&resp.sse_crlf_json()), "This is");
    assert!(client.closed_without_data().await);
}

const EMBED: &str = "/v1beta/models/gemini-embedding-001:batchEmbedContents";

fn embed_request(text: &str) -> Value {
    json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": text}]}})
}

#[tokio::test]
async fn batch_embed_contents_answers_the_openai_routes_vectors_in_order() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let mut sized = embed_request("second text");
    sized["outputDimensionality"] = json!(4);
    sized["taskType"] = json!("RETRIEVAL_DOCUMENT");
    let body = json!({"requests": [embed_request("hello world"), sized]});
    let resp = client.post(EMBED, &body, &GEMINI_KEY).await.unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let v = resp.json();
    assert_eq!(
        v.as_object().map(|o| o.len()),
        Some(1),
        "only embeddings: {v}"
    );
    let embeddings = v["embeddings"].as_array().unwrap();
    assert_eq!(embeddings.len(), 2);
    assert_eq!(embeddings[0]["values"].as_array().unwrap().len(), 8);
    assert_eq!(embeddings[1]["values"].as_array().unwrap().len(), 4);
    let recorded = &server.requests()[0];
    assert_eq!(recorded.credential, Some(Credential::GoogApiKey));

    // The same text has the OpenAI route's vector.
    let openai = client
        .post("/v1/embeddings", &json!({"input": "hello world"}), &[])
        .await
        .unwrap();
    assert_eq!(
        openai.json()["data"][0]["embedding"],
        embeddings[0]["values"]
    );
    // Under /v1/ too.
    let v1 = "/v1/models/gemini-embedding-001:batchEmbedContents";
    let resp = client.post(v1, &body, &GEMINI_KEY).await.unwrap();
    assert_eq!(resp.json(), v);
}

#[tokio::test]
async fn batch_embed_contents_is_validated_and_keyed_as_gemini_does() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let resp = client
        .post(EMBED, &json!({"requests": [embed_request("x")]}), &[])
        .await
        .unwrap();
    google_error(&resp, 403, "PERMISSION_DENIED");

    let many: Vec<Value> = (0..101).map(|_| embed_request("x")).collect();
    let mut other_model = embed_request("x");
    other_model["model"] = json!("models/text-embedding-004");
    for (body, needle) in [
        (
            json!({"requests": many}),
            "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch",
        ),
        (
            json!({"requests": [other_model]}),
            "requests[0].model: the model of every request",
        ),
        (
            json!({"requests": [{"model": "models/gemini-embedding-001"}]}),
            "requests[0].content: content is not specified",
        ),
        (
            json!({"requests": [embed_request("x")], "model": "m"}),
            "Unknown name \"model\"",
        ),
    ] {
        let resp = client.post(EMBED, &body, &GEMINI_KEY).await.unwrap();
        let msg = google_error(&resp, 400, "INVALID_ARGUMENT");
        assert!(msg.contains(needle), "{msg}");
    }

    server.push_fault(Fault::status(429));
    let resp = client
        .post(
            EMBED,
            &json!({"requests": [embed_request("x")]}),
            &GEMINI_KEY,
        )
        .await
        .unwrap();
    assert_eq!(
        google_error(&resp, 429, "RESOURCE_EXHAUSTED"),
        "injected fault"
    );
}
