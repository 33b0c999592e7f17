mod common;

use std::time::{Duration, Instant};

use agentgateway_mock_llm::{Fault, MockLlm, MockLlmConfig};
use common::{Client, chat, chat_stream};

async fn start() -> MockLlm {
    MockLlm::start(MockLlmConfig::default())
        .await
        .expect("start mock-llm")
}

#[tokio::test]
async fn status_fault_sends_retry_after_verbatim_and_an_openai_error() {
    let server = start().await;
    server.set_fault(Some(
        "status=429;retry-after=Wed, 21 Oct 2015 07:28:00 GMT"
            .parse()
            .unwrap(),
    ));
    let mut client = Client::connect(server.addr()).await;
    let resp = client
        .post("/v1/chat/completions", &chat("hi"), &[])
        .await
        .unwrap();
    assert_eq!(resp.status, 429);
    assert_eq!(
        resp.header("retry-after"),
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    );
    assert_eq!(resp.header("x-mock-llm-instance"), Some("mock-llm"));
    let err = &resp.json()["error"];
    assert_eq!(err["message"], "injected fault");
    assert_eq!(err["code"], "rate_limit_exceeded");

    // The instance fault persists, and the connection stays usable.
    let resp = client
        .post("/v1/chat/completions", &chat("hi"), &[])
        .await
        .unwrap();
    assert_eq!(resp.status, 429);
    server.set_fault(None);
    assert_eq!(
        client
            .post("/v1/chat/completions", &chat("hi"), &[])
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn server_error_status_uses_server_error_type() {
    let server = start().await;
    server.set_fault(Some(Fault::status(503)));
    let mut client = Client::connect(server.addr()).await;
    let resp = client.get("/v1/models").await.unwrap();
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("retry-after"), None);
    assert_eq!(resp.json()["error"]["type"], "server_error");
}

#[tokio::test]
async fn insufficient_quota_body_sets_type_and_code() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let fault = [("x-mock-fault", "status=429;body=insufficient_quota")];
    let resp = client
        .post("/v1/chat/completions", &chat("hi"), &fault)
        .await
        .unwrap();
    assert_eq!(resp.status, 429);
    assert_eq!(resp.json()["error"]["type"], "insufficient_quota");
    assert_eq!(resp.json()["error"]["code"], "insufficient_quota");
}

#[tokio::test]
async fn reset_closes_the_connection_with_no_response() {
    let server = start().await;
    server.push_fault(Fault::Reset);
    let mut client = Client::connect(server.addr()).await;
    let err = client
        .post("/v1/chat/completions", &chat("hi"), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
        ),
        "{err:?}"
    );
    assert_eq!(
        server.request_count(),
        1,
        "the request was read before the reset"
    );
    let mut fresh = Client::connect(server.addr()).await;
    assert_eq!(
        fresh.get("/v1/models").await.unwrap().status,
        200,
        "a reset is one-shot"
    );
}

#[tokio::test]
async fn stream_cut_after_three_events_ends_without_terminator() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let fault = [("x-mock-fault", "cut-after=3")];
    let resp = client
        .post("/v1/chat/completions", &chat_stream("hi", true), &fault)
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert!(!resp.complete, "no final zero-length chunk");
    assert_eq!(resp.chunks.len(), 3);
    let events = resp.sse_json();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(events[2]["choices"][0]["delta"]["content"], " is");
    assert!(client.closed_without_data().await);
}

#[tokio::test]
async fn error_after_ends_an_openai_stream_with_an_error_chunk() {
    let server = start().await;
    server.push_fault(Fault::ErrorAfter(2));
    let mut client = Client::connect(server.addr()).await;
    let resp = client
        .post("/v1/chat/completions", &chat_stream("hi", false), &[])
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.complete, "the stream ends cleanly after the error");
    let data = resp.sse_data();
    assert_eq!(data.len(), 3, "{data:?}");
    let error: serde_json::Value = serde_json::from_str(&data[2]).unwrap();
    assert_eq!(error["error"]["type"], "server_error");
    assert!(!data.iter().any(|d| d == "[DONE]"));

    // N beyond the stream still puts the error before the terminal event.
    let fault = [("x-mock-fault", "error-after=99")];
    let resp = client
        .post("/v1/chat/completions", &chat_stream("hi", false), &fault)
        .await
        .unwrap();
    let data = resp.sse_data();
    assert!(data.last().unwrap().contains("\"error\""), "{data:?}");
    assert_eq!(data.len(), 1 + 7 + 1 + 1, "role, words, finish, error");
}

#[tokio::test]
async fn cut_after_on_a_non_stream_response_truncates_the_body() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let resp = client
        .post(
            "/v1/chat/completions",
            &chat("hi"),
            &[("x-mock-fault", "cut-after=1")],
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert!(!resp.complete);
    let declared: usize = resp.header("content-length").unwrap().parse().unwrap();
    assert_eq!(resp.body.len(), declared / 2);
}

#[tokio::test]
async fn delay_holds_back_the_response_headers() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let started = Instant::now();
    let fault = [("x-mock-fault", "delay-ms=200;status=500")];
    let resp = client
        .post("/v1/chat/completions", &chat("hi"), &fault)
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(resp.status, 500);
}

#[tokio::test]
async fn chunk_delay_spaces_out_stream_events() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let started = Instant::now();
    let fault = [("x-mock-fault", "chunk-delay-ms=40")];
    let body = chat_stream("Reply with exactly: a b", false);
    let resp = client
        .post("/v1/chat/completions", &body, &fault)
        .await
        .unwrap();
    // role, a, b, finish, [DONE]: four gaps.
    assert_eq!(resp.sse_data().len(), 5);
    assert!(started.elapsed() >= Duration::from_millis(160));
}

#[tokio::test]
async fn header_fault_wins_over_queue_and_instance_without_consuming_the_queue() {
    let server = start().await;
    server.set_fault(Some(Fault::status(503)));
    server.push_fault(Fault::status(500));
    let mut client = Client::connect(server.addr()).await;
    let resp = client.get_with_fault("status=429").await;
    assert_eq!(resp.status, 429);
    assert_eq!(
        client.get("/v1/models").await.unwrap().status,
        500,
        "queue over instance"
    );
    assert_eq!(
        client.get("/v1/models").await.unwrap().status,
        503,
        "then the instance fault"
    );
    server.clear_faults();
    assert_eq!(client.get("/v1/models").await.unwrap().status, 200);
}

#[tokio::test]
async fn one_shot_faults_are_taken_in_fifo_order() {
    let server = start().await;
    server.push_fault(Fault::status(500));
    server.push_fault(Fault::status(502).with_retry_after("1"));
    server.push_fault(Fault::status(503));
    let mut client = Client::connect(server.addr()).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            client
                .post("/v1/chat/completions", &chat("hi"), &[])
                .await
                .unwrap()
                .status,
        );
    }
    assert_eq!(statuses, [500, 502, 503, 200]);
}

#[tokio::test]
async fn stall_never_answers_and_shutdown_closes_the_connection() {
    let server = start().await;
    let mut stalled = Client::connect(server.addr()).await;
    stalled
        .send_raw(b"GET /v1/models HTTP/1.1\r\nx-mock-fault: stall\r\n\r\n")
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(300), stalled.read_response()).await;
    assert!(waited.is_err(), "a stalled request gets no answer");

    let mut other = Client::connect(server.addr()).await;
    assert_eq!(
        other.get("/v1/models").await.unwrap().status,
        200,
        "other connections still work"
    );

    server.shutdown();
    assert!(stalled.closed_without_data().await);
}

#[tokio::test]
async fn invalid_fault_header_is_a_400() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let resp = client.get_with_fault("explode").await;
    assert_eq!(resp.status, 400);
    assert!(
        resp.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown fault")
    );
}

trait GetWithFault {
    async fn get_with_fault(&mut self, spec: &str) -> common::Response;
}

impl GetWithFault for Client {
    async fn get_with_fault(&mut self, spec: &str) -> common::Response {
        let req = format!("GET /v1/models HTTP/1.1\r\nHost: mock\r\nx-mock-fault: {spec}\r\n\r\n");
        self.send_raw(req.as_bytes()).await.expect("send");
        self.read_response().await.expect("response")
    }
}
