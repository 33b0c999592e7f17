mod common;

use agentgateway_mock_llm::{DEFAULT_REPLY, Fault, MockLlm, MockLlmConfig};
use common::Client;
use serde_json::{Value, json};

async fn start() -> MockLlm {
    MockLlm::start(MockLlmConfig::default())
        .await
        .expect("start mock-llm")
}

/// A one-turn Responses API request with string input.
fn response(input: &str) -> Value {
    json!({"model": "gpt-test", "input": input})
}

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

fn stream(body: Value) -> Value {
    with(body, "stream", json!(true))
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "name": "get_weather",
         "description": "Get the current weather in a location",
         "parameters": {"type": "object", "required": ["location"], "properties": {
             "location": {"type": "string"},
             "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}},
         "strict": false},
        {"type": "function", "name": "get_time", "description": "Get the time",
         "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}},
        {"type": "web_search"},
    ])
}

/// Asserts OpenAI's error shape (with `param`) and returns `(message, param, code)`.
fn openai_error(resp: &common::Response, status: u16) -> (String, Value, Value) {
    assert_eq!(resp.status, status);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json();
    let error = &v["error"];
    assert_eq!(error.as_object().map(|o| o.len()), Some(4), "{v}");
    let message = error["message"].as_str().expect("message").to_owned();
    (message, error["param"].clone(), error["code"].clone())
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[tokio::test]
async fn non_stream_text_reply_is_a_whole_response_object_and_is_recorded() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = json!({
        "model": "gpt-test",
        "instructions": "be brief",
        "input": [
            {"role": "user", "content": "earlier question"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "earlier answer"}]},
            {"role": "user", "content": [{"type": "input_text", "text": "hello there"}]},
        ],
        "metadata": {"run": "r-1"},
        "temperature": 0.5,
    });
    let headers = [("authorization", "Bearer sk-test")];
    let resp = client.post("/v1/responses", &body, &headers).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("x-mock-llm-instance"), Some("mock-llm"));
    let v = resp.json();
    let id = v["id"].as_str().unwrap();
    assert!(id.starts_with("resp_"), "{v}");
    let msg_id = v["output"][0]["id"].as_str().unwrap();
    assert!(msg_id.starts_with("msg_"), "{v}");
    let expected = json!({
        "id": id,
        "object": "response",
        "created_at": 1_700_000_000,
        "status": "completed",
        "completed_at": 1_700_000_000,
        "background": false,
        "error": null,
        "incomplete_details": null,
        "instructions": "be brief",
        "max_output_tokens": null,
        "max_tool_calls": null,
        "metadata": {"run": "r-1"},
        "model": "gpt-test",
        "output": [{
            "id": msg_id, "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "annotations": [], "logprobs": [],
                         "text": DEFAULT_REPLY}],
        }],
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "prompt_cache_key": null,
        "reasoning": {"effort": null, "summary": null},
        "safety_identifier": null,
        "service_tier": "default",
        "store": true,
        "temperature": 0.5,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "user": null,
        // be brief(2) + earlier question(2) + earlier answer(2) + hello there(2); 7 reply words.
        "usage": {"input_tokens": 8,
                  "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": 15},
    });
    assert_eq!(v, expected);

    let recorded = server.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/v1/responses");
    assert_eq!(recorded[0].header("authorization"), Some("Bearer sk-test"));
    assert_eq!(recorded[0].json().unwrap(), body);

    // Without /v1 it is the same endpoint, and the reply rule reads the last user input.
    let v = client
        .post("/responses", &response("Reply with exactly: pong"), &[])
        .await
        .unwrap()
        .json();
    assert_eq!(v["output"][0]["content"][0]["text"], "pong");
    assert_eq!(v["usage"]["output_tokens"], 1);
}

#[tokio::test]
async fn invalid_bodies_are_400s_naming_the_param() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let cases = [
        (
            json!({"input": "hi"}),
            "Missing required parameter: 'model'.",
            json!("model"),
            json!("missing_required_parameter"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
            "Unknown parameter: 'messages'.",
            json!("messages"),
            json!("unknown_parameter"),
        ),
        (
            json!({"model": "m", "input": 7}),
            "Invalid type for 'input': expected one of a string or array of input items, but \
             got an integer instead.",
            json!("input"),
            json!("invalid_type"),
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:,"}}]}]}),
            "Invalid value: 'image_url'. Supported values are: 'input_text', 'input_image', and \
             'input_file'.",
            json!("input[0].content[0].type"),
            json!("invalid_value"),
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call_output", "output": "x"}]}),
            "Missing required parameter: 'input[0].call_id'.",
            json!("input[0].call_id"),
            json!("missing_required_parameter"),
        ),
        (
            with(response("hi"), "max_output_tokens", json!(8)),
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, \
             but got 8 instead.",
            json!("max_output_tokens"),
            json!("integer_below_min_value"),
        ),
        (
            with(
                response("hi"),
                "tools",
                json!([{"type": "function", "function": {"name": "get_weather"}}]),
            ),
            "Missing required parameter: 'tools[0].name'.",
            json!("tools[0].name"),
            json!("missing_required_parameter"),
        ),
    ];
    for (body, message, param, code) in cases {
        let resp = client.post("/v1/responses", &body, &[]).await.unwrap();
        let (m, p, c) = openai_error(&resp, 400);
        assert_eq!((m.as_str(), &p, &c), (message, &param, &code), "{body}");
        assert_eq!(resp.json()["error"]["type"], "invalid_request_error");
    }

    client
        .send_raw(b"POST /v1/responses HTTP/1.1\r\nContent-Length: 5\r\n\r\n{bad}")
        .await
        .unwrap();
    let resp = client.read_response().await.unwrap();
    let (message, param, code) = openai_error(&resp, 400);
    assert!(
        message.contains("could not parse the JSON body"),
        "{message}"
    );
    assert_eq!((param, code), (Value::Null, Value::Null));
}

#[tokio::test]
async fn stream_sends_the_documented_events_in_order_with_sequence_numbers() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = response("Reply with exactly: Hello big world");
    let whole = client
        .post("/v1/responses", &body, &[])
        .await
        .unwrap()
        .json();
    let resp = client
        .post("/v1/responses", &stream(body), &[])
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
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str(), "event name equals data type");
        assert_eq!(data["sequence_number"], i, "{name}");
    }

    let created = &events[0].1["response"];
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["output"], json!([]));
    assert_eq!(created["usage"], Value::Null);
    assert_eq!(events[1].1["response"], *created);
    let added = &events[2].1;
    let item_id = added["item"]["id"].as_str().unwrap();
    assert_eq!(
        *added,
        json!({"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
               "item": {"id": item_id, "type": "message", "status": "in_progress",
                        "role": "assistant", "content": []}})
    );
    assert_eq!(
        events[3].1["part"],
        json!({"type": "output_text", "annotations": [], "logprobs": [], "text": ""})
    );
    let deltas: Vec<&str> = events[4..7]
        .iter()
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, ["Hello", " big", " world"]);
    for (_, d) in &events[3..10] {
        assert_eq!(d["output_index"], 0);
        if d.get("item_id").is_some() {
            assert_eq!(d["item_id"], item_id);
            assert_eq!(d["content_index"], 0);
        }
    }
    assert_eq!(events[4].1["logprobs"], json!([]));
    assert_eq!(events[7].1["text"], "Hello big world");
    assert_eq!(events[8].1["part"]["text"], "Hello big world");
    assert_eq!(events[9].1["item"]["status"], "completed");

    // The final response is the non-stream answer (but for its ids).
    let mut done = events[10].1["response"].clone();
    assert_eq!(done["id"], id);
    assert_eq!(done["output"][0], events[9].1["item"]);
    done["id"] = whole["id"].clone();
    done["output"][0]["id"] = whole["output"][0]["id"].clone();
    assert_eq!(done, whole);
}

#[tokio::test]
async fn weather_with_function_tools_answers_text_then_a_function_call() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = with(
        response("What is the weather in Paris?"),
        "tools",
        weather_tools(),
    );
    let v = client
        .post("/v1/responses", &body, &[])
        .await
        .unwrap()
        .json();
    assert_eq!(v["status"], "completed");
    assert_eq!(v["tools"], weather_tools(), "tools are echoed");
    let output = v["output"].as_array().unwrap();
    assert_eq!(output.len(), 2, "{v}");
    assert_eq!(output[0]["content"][0]["text"], DEFAULT_REPLY);
    let call = &output[1];
    assert!(call["id"].as_str().unwrap().starts_with("fc_"), "{call}");
    assert!(
        call["call_id"].as_str().unwrap().starts_with("call_"),
        "{call}"
    );
    let arguments = r#"{"location":"mock location","unit":"celsius"}"#;
    assert_eq!(
        *call,
        json!({"id": call["id"], "type": "function_call", "status": "completed",
               "arguments": arguments, "call_id": call["call_id"], "name": "get_weather"})
    );
    // 7 reply words + 6 eight-byte pieces of the arguments.
    assert_eq!(v["usage"]["output_tokens"], 7 + 6);

    // A forced choice calls the tool without text first; `none` calls nothing.
    let required = with(body.clone(), "tool_choice", json!("required"));
    let v = client
        .post("/v1/responses", &required, &[])
        .await
        .unwrap()
        .json();
    assert_eq!(v["output"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["output"][0]["name"], "get_weather");
    let named = with(response("hello"), "tools", weather_tools());
    let named = with(
        named,
        "tool_choice",
        json!({"type": "function", "name": "get_time"}),
    );
    let v = client
        .post("/v1/responses", &named, &[])
        .await
        .unwrap()
        .json();
    assert_eq!(v["output"][0]["name"], "get_time");
    assert_eq!(v["output"][0]["arguments"], r#"{"tz":"mock tz"}"#);
    let none = with(body.clone(), "tool_choice", json!("none"));
    let v = client
        .post("/v1/responses", &none, &[])
        .await
        .unwrap()
        .json();
    assert_eq!(v["output"].as_array().unwrap().len(), 1);
    assert_eq!(v["output"][0]["type"], "message");

    // Streamed, the call's arguments come in pieces that add up to the whole.
    let resp = client
        .post("/v1/responses", &stream(required), &[])
        .await
        .unwrap();
    let events = resp.sse_events();
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
    ];
    expected.extend(["response.function_call_arguments.delta"; 6]);
    expected.extend([
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names(&events), expected);
    let added = &events[2].1["item"];
    assert_eq!(added["type"], "function_call");
    assert_eq!(added["status"], "in_progress");
    assert_eq!(added["arguments"], "");
    let streamed: String = events[3..9]
        .iter()
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, arguments);
    let args_done = &events[9].1;
    assert_eq!(args_done["arguments"], arguments);
    assert_eq!(args_done["name"], "get_weather");
    assert_eq!(args_done["item_id"], added["id"]);
    assert_eq!(events[10].1["item"]["arguments"], arguments);
    for (i, (_, d)) in events.iter().enumerate() {
        assert_eq!(d["sequence_number"], i);
    }
}

#[tokio::test]
async fn max_output_tokens_below_the_reply_makes_the_response_incomplete() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let words: Vec<String> = (1..=20).map(|n| format!("w{n}")).collect();
    let prompt = format!("Reply with exactly: {}", words.join(" "));
    let body = with(response(&prompt), "max_output_tokens", json!(16));
    let v = client
        .post("/v1/responses", &body, &[])
        .await
        .unwrap()
        .json();
    assert_eq!(v["status"], "incomplete");
    assert_eq!(v["completed_at"], Value::Null);
    assert_eq!(
        v["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(v["max_output_tokens"], 16);
    assert_eq!(v["output"][0]["status"], "incomplete");
    assert_eq!(v["output"][0]["content"][0]["text"], words[..16].join(" "));
    assert_eq!(v["usage"]["output_tokens"], 16);

    // Streamed, the last event is `response.incomplete`, after 16 deltas.
    let resp = client
        .post("/v1/responses", &stream(body), &[])
        .await
        .unwrap();
    let events = resp.sse_events();
    let deltas = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .count();
    assert_eq!(deltas, 16);
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "response.incomplete");
    assert_eq!(last["response"]["status"], "incomplete");
    assert_eq!(last["response"]["usage"]["output_tokens"], 16);
}

#[tokio::test]
async fn previous_response_id_continues_a_stored_response_only() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let resp = client
        .post(
            "/v1/responses",
            &with(
                response("hi"),
                "previous_response_id",
                json!("resp_unknown"),
            ),
            &[],
        )
        .await
        .unwrap();
    let (message, param, code) = openai_error(&resp, 400);
    assert_eq!(
        message,
        "Previous response with id 'resp_unknown' not found."
    );
    assert_eq!(param, "previous_response_id");
    assert_eq!(code, "previous_response_not_found");

    // A tool call, then its output as a follow-up that only names the call.
    let first = with(
        response("What is the weather in Paris?"),
        "tools",
        weather_tools(),
    );
    let first = with(first, "tool_choice", json!("required"));
    let v = client
        .post("/v1/responses", &first, &[])
        .await
        .unwrap()
        .json();
    let first_id = v["id"].as_str().unwrap().to_owned();
    let call_id = v["output"][0]["call_id"].as_str().unwrap().to_owned();
    let first_total = v["usage"]["total_tokens"].as_u64().unwrap();
    let follow_up = json!({
        "model": "gpt-test", "previous_response_id": first_id, "tools": weather_tools(),
        "input": [{"type": "function_call_output", "call_id": call_id, "output": "sunny"}],
    });
    let v = client
        .post("/v1/responses", &follow_up, &[])
        .await
        .unwrap()
        .json();
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["previous_response_id"], first_id.as_str());
    assert_eq!(
        v["output"],
        json!([{"id": v["output"][0]["id"], "type": "message", "status": "completed",
                "role": "assistant", "content": [{"type": "output_text", "annotations": [],
                "logprobs": [], "text": DEFAULT_REPLY}]}]),
        "the tool's result is answered with text"
    );
    // The stored conversation, the tools again (12 words) and the tool's output (1 word).
    assert_eq!(v["usage"]["input_tokens"], first_total + 12 + 1);

    // Answering the same call again, or one never made, is refused as OpenAI refuses it.
    let again = with(follow_up.clone(), "previous_response_id", v["id"].clone());
    let resp = client.post("/v1/responses", &again, &[]).await.unwrap();
    let (message, param, _) = openai_error(&resp, 400);
    assert_eq!(
        message,
        format!("No tool call found for function call output with call_id {call_id}.")
    );
    assert_eq!(param, "input");
    let mut stateless = follow_up;
    stateless
        .as_object_mut()
        .unwrap()
        .remove("previous_response_id");
    let resp = client.post("/v1/responses", &stateless, &[]).await.unwrap();
    assert_eq!(resp.status, 400);

    // `store: false` leaves nothing to continue.
    let v = client
        .post(
            "/v1/responses",
            &with(response("hi"), "store", json!(false)),
            &[],
        )
        .await
        .unwrap()
        .json();
    assert_eq!(v["store"], false);
    let unstored = with(response("hi"), "previous_response_id", v["id"].clone());
    let resp = client.post("/v1/responses", &unstored, &[]).await.unwrap();
    assert_eq!(openai_error(&resp, 400).2, "previous_response_not_found");
}

#[tokio::test]
async fn faults_apply_to_responses_in_its_error_shapes() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let fault = [("x-mock-fault", "status=429;retry-after=2")];
    let resp = client
        .post("/v1/responses", &response("hi"), &fault)
        .await
        .unwrap();
    assert_eq!(resp.header("retry-after"), Some("2"));
    let (message, param, code) = openai_error(&resp, 429);
    assert_eq!(message, "injected fault");
    assert_eq!((param, code), (Value::Null, json!("rate_limit_exceeded")));
    assert_eq!(resp.json()["error"]["type"], "rate_limit_error");

    // A mid-stream error is an `error` event numbered like the event it replaces.
    server.push_fault(Fault::ErrorAfter(3));
    let resp = client
        .post("/v1/responses", &stream(response("hi")), &[])
        .await
        .unwrap();
    assert!(resp.complete, "the stream ends cleanly after the error");
    let events = resp.sse_events();
    assert_eq!(events.len(), 4, "{events:?}");
    let (name, error) = &events[3];
    assert_eq!(name, "error");
    assert_eq!(
        *error,
        json!({"type": "error", "code": "server_error",
               "message": "The server had an error while processing your request. Sorry about that!",
               "param": null, "sequence_number": 3})
    );

    // A cut stream ends without its terminating chunk.
    let fault = [("x-mock-fault", "cut-after=2")];
    let resp = client
        .post("/v1/responses", &stream(response("hi")), &fault)
        .await
        .unwrap();
    assert!(!resp.complete);
    assert_eq!(
        names(&resp.sse_events()),
        ["response.created", "response.in_progress"]
    );
    assert!(client.closed_without_data().await);
}
