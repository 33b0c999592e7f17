mod common;

use agentgateway_mock_llm::{DEFAULT_REPLY, MockLlm, MockLlmConfig};
use common::{Client, chat, chat_stream};
use serde_json::json;

async fn start() -> MockLlm {
    MockLlm::start(MockLlmConfig::default())
        .await
        .expect("start mock-llm")
}

#[tokio::test]
async fn non_stream_chat_has_openai_shape_and_word_counted_usage() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = json!({"model": "gpt-test", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there  mock\nllm"},
    ]});
    let resp = client
        .post("/v1/chat/completions", &body, &[])
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("x-mock-llm-instance"), Some("mock-llm"));
    let v = resp.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["created"], 1_700_000_000);
    assert_eq!(v["model"], "gpt-test");
    assert_eq!(v["choices"][0]["index"], 0);
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], DEFAULT_REPLY);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let usage = &v["usage"];
    assert_eq!(usage["prompt_tokens"], 6);
    assert_eq!(usage["completion_tokens"], 7);
    assert_eq!(usage["total_tokens"], 13);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 0);
}

#[tokio::test]
async fn reply_with_exactly_is_echoed_trimmed_and_parts_content_counts() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let resp = client
        .post(
            "/v1/chat/completions",
            &chat("Please. Reply with exactly:  OK done  "),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(resp.json()["choices"][0]["message"]["content"], "OK done");
    assert_eq!(resp.json()["usage"]["completion_tokens"], 2);

    let parts = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "one two"},
        {"type": "image_url", "image_url": {"url": "data:,"}},
        {"type": "text", "text": "Reply with exactly: pong"},
    ]}]});
    let v = client
        .post("/v1/chat/completions", &parts, &[])
        .await
        .unwrap()
        .json();
    assert_eq!(v["choices"][0]["message"]["content"], "pong");
    assert_eq!(v["usage"]["prompt_tokens"], 6);
    assert_eq!(
        v["model"], "mock-model",
        "an absent model falls back to the configured one"
    );
}

#[tokio::test]
async fn configured_reply_and_empty_model_fall_back_to_the_instance_config() {
    let config = MockLlmConfig {
        reply: Some("custom words".into()),
        model: "m1".into(),
        ..Default::default()
    };
    let server = MockLlm::start(config).await.unwrap();
    let mut client = Client::connect(server.addr()).await;
    let body = json!({"model": "", "messages": [{"role": "user", "content": "hi"}]});
    let v = client
        .post("/v1/chat/completions", &body, &[])
        .await
        .unwrap()
        .json();
    assert_eq!(v["choices"][0]["message"]["content"], "custom words");
    assert_eq!(v["model"], "m1");
}

#[tokio::test]
async fn stream_sends_role_words_finish_then_done_without_usage() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let resp = client
        .post(
            "/v1/chat/completions",
            &chat_stream("Reply with exactly: Hello big world", false),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert!(resp.complete);
    let data = resp.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(
        resp.chunks.len(),
        data.len(),
        "one HTTP chunk per SSE event"
    );
    let events = resp.sse_json();
    assert_eq!(events.len(), 5);
    let id = events[0]["id"].clone();
    for e in &events {
        assert_eq!(e["object"], "chat.completion.chunk");
        assert_eq!(e["id"], id);
        assert_eq!(e["created"], 1_700_000_000);
        assert_eq!(e["model"], "gpt-test");
        assert!(e.get("usage").is_none());
    }
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let words: Vec<&str> = events[1..4]
        .iter()
        .map(|e| e["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(words, ["Hello", " big", " world"]);
    assert_eq!(words.concat(), "Hello big world");
    assert_eq!(events[4]["choices"][0]["delta"], json!({}));
    assert_eq!(events[4]["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn stream_with_include_usage_adds_a_usage_chunk_before_done() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let resp = client
        .post(
            "/v1/chat/completions",
            &chat_stream("say something", true),
            &[],
        )
        .await
        .unwrap();
    let events = resp.sse_json();
    assert_eq!(events.len(), 1 + 7 + 1 + 1);
    let content: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, DEFAULT_REPLY);
    let usage_chunk = events.last().unwrap();
    assert_eq!(usage_chunk["object"], "chat.completion.chunk");
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 2);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 7);
    assert_eq!(usage_chunk["usage"]["total_tokens"], 9);
    assert_eq!(resp.sse_data().last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn keep_alive_serves_two_requests_on_one_connection() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let first = client
        .post("/v1/chat/completions", &chat_stream("one", false), &[])
        .await
        .unwrap();
    let second = client
        .post("/v1/chat/completions", &chat("two"), &[])
        .await
        .unwrap();
    assert!(first.complete && second.complete);
    assert_eq!(second.status, 200);
    assert_ne!(first.sse_json()[0]["id"], second.json()["id"]);
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn chunked_request_body_is_reassembled_and_recorded() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = serde_json::to_vec(&chat("Reply with exactly: chunked ok")).unwrap();
    let (a, b) = body.split_at(10);
    let mut req = b"POST /v1/chat/completions HTTP/1.1\r\nHost: mock\r\nTransfer-Encoding: chunked\r\nX-Trace: t1\r\n\r\n".to_vec();
    req.extend_from_slice(format!("{:x};ext=1\r\n", a.len()).as_bytes());
    req.extend_from_slice(a);
    req.extend_from_slice(format!("\r\n{:X}\r\n", b.len()).as_bytes());
    req.extend_from_slice(b);
    req.extend_from_slice(b"\r\n0\r\nX-Trailer: yes\r\n\r\n");
    client.send_raw(&req).await.unwrap();
    let resp = client.read_response().await.unwrap();
    assert_eq!(
        resp.json()["choices"][0]["message"]["content"],
        "chunked ok"
    );
    let recorded = server.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(recorded[0].path, "/v1/chat/completions");
    assert_eq!(recorded[0].header("X-Trace"), Some("t1"));
    assert_eq!(&recorded[0].body[..], &body[..]);
    assert_eq!(recorded[0].json().unwrap()["model"], "gpt-test");
    // The connection is still usable after a chunked body.
    assert_eq!(client.get("/v1/models").await.unwrap().status, 200);
}

#[tokio::test]
async fn connection_close_is_honoured_after_the_response() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let resp = client
        .post(
            "/v1/chat/completions",
            &chat("bye"),
            &[("Connection", "close")],
        )
        .await
        .unwrap();
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(client.closed_without_data().await);
}

#[tokio::test]
async fn expect_continue_gets_an_interim_response() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let resp = client
        .post(
            "/v1/chat/completions",
            &chat("hi"),
            &[("Expect", "100-continue")],
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn models_embeddings_and_completions_answer() {
    let config = MockLlmConfig {
        model: "gemma".into(),
        name: "up-a".into(),
        ..Default::default()
    };
    let server = MockLlm::start(config).await.unwrap();
    let mut client = Client::connect(server.addr()).await;
    let models = client.get("/v1/models").await.unwrap();
    assert_eq!(models.header("x-mock-llm-instance"), Some("up-a"));
    assert_eq!(
        models.json(),
        json!({"object": "list", "data": [{"id": "gemma", "object": "model", "created": 1_700_000_000, "owned_by": "mock-llm"}]})
    );

    let emb = client
        .post("/v1/embeddings", &json!({"input": "hello world"}), &[])
        .await
        .unwrap()
        .json();
    assert_eq!(emb["object"], "list");
    assert_eq!(emb["model"], "gemma");
    assert_eq!(emb["usage"], json!({"prompt_tokens": 2, "total_tokens": 2}));
    let vector = emb["data"][0]["embedding"].as_array().unwrap();
    assert_eq!(vector.len(), 8);
    let again = client
        .post("/v1/embeddings", &json!({"input": "hello world"}), &[])
        .await
        .unwrap()
        .json();
    assert_eq!(emb["data"], again["data"], "embeddings are deterministic");
    let other = client
        .post("/v1/embeddings", &json!({"input": "other"}), &[])
        .await
        .unwrap()
        .json();
    assert_ne!(emb["data"], other["data"]);

    let cmpl = client
        .post(
            "/v1/completions",
            &json!({"model": "m", "prompt": "Reply with exactly: yes"}),
            &[],
        )
        .await
        .unwrap()
        .json();
    assert_eq!(cmpl["object"], "text_completion");
    assert_eq!(cmpl["choices"][0]["text"], "yes");
    assert_eq!(cmpl["usage"]["prompt_tokens"], 4);
    assert_eq!(cmpl["usage"]["completion_tokens"], 1);
}

#[tokio::test]
async fn unknown_path_is_404_and_bad_json_is_400_with_openai_errors() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let resp = client.post("/v1/nope", &json!({}), &[]).await.unwrap();
    assert_eq!(resp.status, 404);
    assert_eq!(resp.json()["error"]["type"], "invalid_request_error");
    assert_eq!(resp.json()["error"]["code"], "not_found");
    assert_eq!(
        client.get("/v1/chat/completions").await.unwrap().status,
        404
    );

    client
        .send_raw(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\n\r\n{bad}")
        .await
        .unwrap();
    let resp = client.read_response().await.unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["error"]["type"], "invalid_request_error");
    assert!(
        resp.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid JSON")
    );
    assert_eq!(resp.header("x-mock-llm-instance"), Some("mock-llm"));
}

#[tokio::test]
async fn recording_can_be_disabled_and_cleared() {
    let server = MockLlm::start(MockLlmConfig {
        record: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut client = Client::connect(server.addr()).await;
    client.get("/v1/models").await.unwrap();
    assert_eq!(server.request_count(), 1);
    assert!(server.requests().is_empty());
    server.clear_requests();
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let server = start().await;
    let addr = server.addr();
    let clone = server.clone();
    drop(server);
    assert_eq!(
        Client::connect(addr)
            .await
            .get("/v1/models")
            .await
            .unwrap()
            .status,
        200,
        "a clone keeps it alive"
    );
    drop(clone);
    let mut refused = false;
    for _ in 0..100 {
        tokio::task::yield_now().await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused, "the listener is closed once every handle is gone");
}
