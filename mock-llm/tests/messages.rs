mod common;

use agentgateway_mock_llm::{DEFAULT_REPLY, Fault, MockLlm, MockLlmConfig};
use common::{ANTHROPIC, Client, message};
use serde_json::{Value, json};

async fn start() -> MockLlm {
    MockLlm::start(MockLlmConfig::default())
        .await
        .expect("start mock-llm")
}

fn weather_tools() -> Value {
    json!([
        {"name": "get_weather", "description": "Get the current weather in a location",
         "input_schema": {"type": "object", "required": ["location"], "properties": {
             "location": {"type": "string", "description": "City and state"},
             "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}},
        {"name": "get_time", "description": "Get the time",
         "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}},
    ])
}

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

fn stream(body: Value) -> Value {
    with(body, "stream", json!(true))
}

/// Asserts Anthropic's error shape and returns the message.
fn anthropic_error(resp: &common::Response, status: u16, kind: &str) -> String {
    assert_eq!(resp.status, status);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert_eq!(v["error"].as_object().map(|o| o.len()), Some(2), "{v}");
    v["error"]["message"].as_str().expect("message").to_owned()
}

#[tokio::test]
async fn missing_or_unknown_anthropic_version_is_a_400() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let resp = client
        .post("/v1/messages", &message("hi"), &[])
        .await
        .unwrap();
    let msg = anthropic_error(&resp, 400, "invalid_request_error");
    assert_eq!(msg, "anthropic-version: header is required");

    let resp = client
        .post(
            "/v1/messages",
            &message("hi"),
            &[("anthropic-version", "2022-12-31")],
        )
        .await
        .unwrap();
    let msg = anthropic_error(&resp, 400, "invalid_request_error");
    assert!(msg.contains("2022-12-31"), "{msg}");

    // Without /v1 and with a query string it is the same endpoint.
    let resp = client
        .post("/messages?beta=true", &message("hi"), &ANTHROPIC)
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn invalid_bodies_are_400s_naming_the_field() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let mut no_max = message("hi");
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let cases = [
        (no_max, "max_tokens: Field required"),
        (
            with(message("hi"), "max_tokens", json!(0)),
            "max_tokens: Input should be greater than or equal to 1",
        ),
        (
            with(message("hi"), "messages", json!([])),
            "messages: at least one message is required",
        ),
        (
            with(
                message("hi"),
                "messages",
                json!([{"role": "system", "content": "x"}]),
            ),
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (
            with(
                message("hi"),
                "tools",
                json!([{"name": "t", "input_schema": {"type": "string"}}]),
            ),
            "tools.0.input_schema.type: Input should be 'object'",
        ),
        (
            with(message("hi"), "tool_choice", json!({"type": "sometimes"})),
            "tool_choice: Input tag 'sometimes' found using 'type' does not match any of the \
             expected tags: 'auto', 'any', 'tool', 'none'",
        ),
        (
            with(message("hi"), "stream", json!("yes")),
            "stream: Input should be a valid boolean",
        ),
    ];
    for (body, expected) in cases {
        let resp = client
            .post("/v1/messages", &body, &ANTHROPIC)
            .await
            .unwrap();
        assert_eq!(
            anthropic_error(&resp, 400, "invalid_request_error"),
            expected
        );
    }

    client
        .send_raw(
            b"POST /v1/messages HTTP/1.1\r\nanthropic-version: 2023-06-01\r\n\
              Content-Length: 5\r\n\r\n{bad}",
        )
        .await
        .unwrap();
    let resp = client.read_response().await.unwrap();
    let msg = anthropic_error(&resp, 400, "invalid_request_error");
    assert!(msg.contains("invalid JSON"), "{msg}");
}

#[tokio::test]
async fn non_stream_text_reply_has_the_message_shape_and_is_recorded() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = json!({
        "model": "claude-test",
        "max_tokens": 100,
        "system": "be brief",
        "messages": [
            {"role": "user", "content": "earlier question"},
            {"role": "assistant", "content": "earlier answer"},
            {"role": "user", "content": [{"type": "text", "text": "hello there"}]},
        ],
        "metadata": {"user_id": "u-1"},
    });
    let headers = [ANTHROPIC[0], ("x-api-key", "sk-ant-test")];
    let resp = client.post("/v1/messages", &body, &headers).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("x-mock-llm-instance"), Some("mock-llm"));
    let v = resp.json();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"), "{v}");
    let expected = json!({
        "id": v["id"],
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": DEFAULT_REPLY}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        // be brief(2) + earlier question(2) + earlier answer(2) + hello there(2); 7 reply words.
        "usage": {"input_tokens": 8, "output_tokens": 7,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    });
    assert_eq!(v, expected);

    let recorded = server.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/v1/messages");
    assert_eq!(recorded[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(recorded[0].header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(recorded[0].json().unwrap(), body);
}

#[tokio::test]
async fn reply_rule_cache_control_max_tokens_and_stop_sequences() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = json!({
        "model": "claude-test",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "a long shared preamble",
                    "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Reply with exactly: one two three four"}],
    });
    let v = client
        .post("/v1/messages", &body, &ANTHROPIC)
        .await
        .unwrap()
        .json();
    assert_eq!(v["content"][0]["text"], "one two three four");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(
        v["usage"],
        // 4 cached system words + 7 message words.
        json!({"input_tokens": 7, "output_tokens": 4,
               "cache_creation_input_tokens": 0, "cache_read_input_tokens": 4})
    );

    let v = client
        .post(
            "/v1/messages",
            &with(body.clone(), "max_tokens", json!(2)),
            &ANTHROPIC,
        )
        .await
        .unwrap()
        .json();
    assert_eq!(v["content"][0]["text"], "one two");
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert_eq!(v["usage"]["output_tokens"], 2);

    let v = client
        .post(
            "/v1/messages",
            &with(body, "stop_sequences", json!([" three"])),
            &ANTHROPIC,
        )
        .await
        .unwrap()
        .json();
    assert_eq!(v["content"][0]["text"], "one two");
    assert_eq!(v["stop_reason"], "stop_sequence");
    assert_eq!(v["stop_sequence"], " three");
}

#[tokio::test]
async fn weather_with_tools_answers_text_then_tool_use() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = with(
        message("What is the weather in Paris?"),
        "tools",
        weather_tools(),
    );
    let v = client
        .post("/v1/messages", &body, &ANTHROPIC)
        .await
        .unwrap()
        .json();
    assert_eq!(v["stop_reason"], "tool_use");
    let content = v["content"].as_array().unwrap();
    assert_eq!(content.len(), 2, "{v}");
    assert_eq!(content[0], json!({"type": "text", "text": DEFAULT_REPLY}));
    let tool = &content[1];
    assert_eq!(tool["type"], "tool_use");
    assert!(tool["id"].as_str().unwrap().starts_with("toolu_"), "{tool}");
    assert_eq!(tool["name"], "get_weather");
    assert_eq!(
        tool["input"],
        json!({"location": "mock location", "unit": "celsius"})
    );
    assert_eq!(tool.as_object().unwrap().len(), 4);

    // Without tools, or with tool_choice none, the same prompt gets plain text.
    let plain = client
        .post("/v1/messages", &message("weather?"), &ANTHROPIC)
        .await
        .unwrap()
        .json();
    assert_eq!(plain["stop_reason"], "end_turn");
    let none = with(body, "tool_choice", json!({"type": "none"}));
    let v = client
        .post("/v1/messages", &none, &ANTHROPIC)
        .await
        .unwrap()
        .json();
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["content"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn forced_tool_choice_answers_only_the_chosen_tool() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = with(message("hello"), "tools", weather_tools());
    let chosen = with(
        body.clone(),
        "tool_choice",
        json!({"type": "tool", "name": "get_time"}),
    );
    let v = client
        .post("/v1/messages", &chosen, &ANTHROPIC)
        .await
        .unwrap()
        .json();
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["content"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["content"][0]["name"], "get_time");
    assert_eq!(v["content"][0]["input"], json!({"tz": "mock tz"}));

    let any = with(body, "tool_choice", json!({"type": "any"}));
    let v = client
        .post("/v1/messages", &any, &ANTHROPIC)
        .await
        .unwrap()
        .json();
    assert_eq!(v["content"][0]["name"], "get_weather");

    // A tool result closes the loop: no `weather` in the last user turn, so text comes back.
    let follow_up = json!({
        "model": "claude-test", "max_tokens": 100, "tools": weather_tools(),
        "messages": [
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"location": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
        ],
    });
    let v = client
        .post("/v1/messages", &follow_up, &ANTHROPIC)
        .await
        .unwrap()
        .json();
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": DEFAULT_REPLY}])
    );
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

fn text_of(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "text_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().expect("text"))
        .collect()
}

#[tokio::test]
async fn stream_sends_anthropic_events_whose_text_matches_the_non_stream_reply() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = message("Reply with exactly: Hello big world");
    let whole = client
        .post("/v1/messages", &body, &ANTHROPIC)
        .await
        .unwrap()
        .json();
    let resp = client
        .post("/v1/messages", &stream(body), &ANTHROPIC)
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert!(resp.complete);
    let events = resp.sse_events();
    assert_eq!(resp.chunks.len(), events.len(), "one HTTP chunk per event");
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str(), "event name equals data type");
    }
    let start = &events[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(start["type"], "message");
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["model"], "claude-test");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["stop_sequence"], Value::Null);
    assert_eq!(
        start["usage"]["input_tokens"],
        whole["usage"]["input_tokens"]
    );
    assert_eq!(start["usage"]["output_tokens"], 1);
    assert_eq!(
        events[1].1,
        json!({"type": "content_block_start", "index": 0,
               "content_block": {"type": "text", "text": ""}})
    );
    assert_eq!(events[2].1, json!({"type": "ping"}));
    assert_eq!(events[3].1["index"], 0);
    assert_eq!(
        events[4].1["delta"],
        json!({"type": "text_delta", "text": " big"})
    );
    assert_eq!(
        text_of(&events),
        whole["content"][0]["text"].as_str().unwrap()
    );
    assert_eq!(
        events[6].1,
        json!({"type": "content_block_stop", "index": 0})
    );
    assert_eq!(
        events[7].1,
        json!({"type": "message_delta",
               "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": whole["usage"]["output_tokens"]}})
    );
    assert_eq!(events[8].1, json!({"type": "message_stop"}));
    assert!(
        !String::from_utf8_lossy(&resp.body).contains("[DONE]"),
        "Anthropic streams have no [DONE]"
    );
}

#[tokio::test]
async fn streamed_tool_input_json_pieces_rebuild_the_non_stream_input() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = with(
        message("Reply with exactly: Checking now. What's the weather?"),
        "tools",
        weather_tools(),
    );
    let whole = client
        .post("/v1/messages", &body, &ANTHROPIC)
        .await
        .unwrap()
        .json();
    assert_eq!(whole["content"][1]["type"], "tool_use", "{whole}");
    let events = client
        .post("/v1/messages", &stream(body), &ANTHROPIC)
        .await
        .unwrap()
        .sse_events();
    let names = names(&events);
    assert_eq!(names[..3], ["message_start", "content_block_start", "ping"]);
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    assert_eq!(
        text_of(&events),
        whole["content"][0]["text"].as_str().unwrap()
    );

    let tool_start = events
        .iter()
        .position(|(_, d)| d["content_block"]["type"] == "tool_use")
        .expect("a tool_use block");
    assert_eq!(events[tool_start - 1].1["type"], "content_block_stop");
    let tool_id = events[tool_start].1["content_block"]["id"].clone();
    assert!(tool_id.as_str().unwrap().starts_with("toolu_"));
    assert_eq!(
        events[tool_start].1,
        json!({"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": tool_id, "name": "get_weather", "input": {}}})
    );
    let pieces: Vec<&str> = events[tool_start + 1..]
        .iter()
        .take_while(|(name, _)| name == "content_block_delta")
        .map(|(_, d)| {
            assert_eq!(d["index"], 1);
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap()
        })
        .collect();
    assert!(pieces.len() > 1, "the input arrives in several pieces");
    let input: Value = serde_json::from_str(&pieces.concat()).expect("valid JSON");
    assert_eq!(input, whole["content"][1]["input"]);
    let stop = tool_start + 1 + pieces.len();
    assert_eq!(
        events[stop].1,
        json!({"type": "content_block_stop", "index": 1})
    );
    let delta = &events[stop + 1].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        delta["usage"]["output_tokens"],
        whole["usage"]["output_tokens"]
    );

    // A forced tool has no text block: the tool_use block is index 0, followed by the ping.
    let forced = with(
        stream(with(message("hi"), "tools", weather_tools())),
        "tool_choice",
        json!({"type": "any"}),
    );
    let events = client
        .post("/v1/messages", &forced, &ANTHROPIC)
        .await
        .unwrap()
        .sse_events();
    assert_eq!(events[1].1["index"], 0);
    assert_eq!(events[1].1["content_block"]["type"], "tool_use");
    assert_eq!(events[2].0, "ping");
}

#[tokio::test]
async fn status_faults_use_anthropic_error_bodies() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    server.push_fault(Fault::status(529));
    let resp = client
        .post("/v1/messages", &message("hi"), &ANTHROPIC)
        .await
        .unwrap();
    assert_eq!(
        anthropic_error(&resp, 529, "overloaded_error"),
        "injected fault"
    );

    let fault = [ANTHROPIC[0], ("x-mock-fault", "status=429;retry-after=7")];
    let resp = client
        .post("/v1/messages", &message("hi"), &fault)
        .await
        .unwrap();
    anthropic_error(&resp, 429, "rate_limit_error");
    assert_eq!(resp.header("retry-after"), Some("7"));

    let fault = [
        ANTHROPIC[0],
        ("x-mock-fault", "status=500;body=overloaded_error"),
    ];
    let resp = client
        .post("/v1/messages", &message("hi"), &fault)
        .await
        .unwrap();
    anthropic_error(&resp, 500, "overloaded_error");

    // Faults come before header checks, as on a real overloaded upstream.
    server.set_fault(Some(Fault::status(401)));
    let resp = client
        .post("/v1/messages", &message("hi"), &[])
        .await
        .unwrap();
    anthropic_error(&resp, 401, "authentication_error");
    server.clear_faults();

    let fault = [ANTHROPIC[0], ("x-mock-fault", "explode")];
    let resp = client
        .post("/v1/messages", &message("hi"), &fault)
        .await
        .unwrap();
    let msg = anthropic_error(&resp, 400, "invalid_request_error");
    assert!(msg.contains("unknown fault"), "{msg}");
}

#[tokio::test]
async fn error_after_sends_an_overloaded_error_event_mid_stream() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let fault = [ANTHROPIC[0], ("x-mock-fault", "error-after=4")];
    let resp = client
        .post("/v1/messages", &stream(message("hi")), &fault)
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.complete, "the stream ends cleanly after the error");
    let events = resp.sse_events();
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(
        events[4].1,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    // The connection is still usable, and a non-streaming request is unaffected.
    let resp = client
        .post("/v1/messages", &message("hi"), &fault)
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn cut_after_drops_the_messages_stream_after_n_events() {
    let server = start().await;
    server.push_fault(Fault::CutAfter(3));
    let mut client = Client::connect(server.addr()).await;
    let resp = client
        .post("/v1/messages", &stream(message("hi")), &ANTHROPIC)
        .await
        .unwrap();
    assert!(!resp.complete, "no final zero-length chunk");
    assert_eq!(
        names(&resp.sse_events()),
        ["message_start", "content_block_start", "ping"]
    );
    assert!(client.closed_without_data().await);
}

#[tokio::test]
async fn count_tokens_counts_input_as_messages_does_with_its_header_and_body_checks() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = json!({
        "model": "claude-test",
        "system": [{"type": "text", "text": "a long shared preamble",
                    "cache_control": {"type": "ephemeral"}}],
        "tools": weather_tools(),
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
    });
    let resp = client
        .post("/v1/messages/count_tokens", &body, &ANTHROPIC)
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let counted = resp.json();
    // The tools (12 words), the system prompt (4) and the message (6), the cached prefix too.
    assert_eq!(counted, json!({"input_tokens": 22}));

    // The same prompt on /v1/messages reports the same input, split into cached and not.
    let v = client
        .post(
            "/v1/messages",
            &with(body.clone(), "max_tokens", json!(64)),
            &ANTHROPIC,
        )
        .await
        .unwrap()
        .json();
    let usage = &v["usage"];
    let input = usage["input_tokens"].as_u64().unwrap();
    let cached = usage["cache_read_input_tokens"].as_u64().unwrap();
    assert_eq!(input + cached, 22);

    let recorded = server.requests();
    assert_eq!(recorded[0].path, "/v1/messages/count_tokens");
    assert_eq!(recorded[0].json().unwrap(), body);

    let resp = client
        .post("/v1/messages/count_tokens", &body, &[])
        .await
        .unwrap();
    let msg = anthropic_error(&resp, 400, "invalid_request_error");
    assert_eq!(msg, "anthropic-version: header is required");
    let cases = [
        (
            with(body.clone(), "max_tokens", json!(64)),
            "max_tokens: Extra inputs are not permitted",
        ),
        (
            with(body.clone(), "messages", json!([])),
            "messages: at least one message is required",
        ),
        (
            with(body.clone(), "model", json!(5)),
            "model: Input should be a valid string",
        ),
    ];
    for (bad, expected) in cases {
        let resp = client
            .post("/messages/count_tokens", &bad, &ANTHROPIC)
            .await
            .unwrap();
        assert_eq!(
            anthropic_error(&resp, 400, "invalid_request_error"),
            expected
        );
    }

    // Injected faults answer in Anthropic's shape here too.
    let fault = [ANTHROPIC[0], ("x-mock-fault", "status=529")];
    let resp = client
        .post("/v1/messages/count_tokens", &body, &fault)
        .await
        .unwrap();
    assert_eq!(
        anthropic_error(&resp, 529, "overloaded_error"),
        "injected fault"
    );
}
