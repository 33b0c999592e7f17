//! HTTPRoute filters and timeouts through the real proxy: headers the provider receives and the
//! client gets back, redirects answered without a provider, path rewrites, and rule timeouts.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use agentgateway_mock_llm::Fault;
use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use serde_json::json;

/// An `HTTPRoute` in `default` with the given rules (YAML list items, indented by two).
fn route_with(rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: filtered\n  namespace: default\nspec:\n  parentRefs:\n  - name: agentgateway-proxy\n  rules:\n{rules}"
    )
}

const TO_LLM: &str =
    "    backendRefs:\n    - {group: agentgateway.dev, kind: AgentgatewayBackend, name: llm}\n";

#[tokio::test]
async fn header_changes_reach_the_provider_and_provider_auth_still_wins() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        GATEWAY_KEY_SECRET.to_string(),
        backend("llm", &[&[("a", a.addr())]], GATEWAY_KEY_AUTH, ""),
        route_with(
            "  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Team, value: blue}]
        add: [{name: x-tag, value: one}]
        remove: [x-remove-me]
    backendRefs:
    - group: agentgateway.dev
      kind: AgentgatewayBackend
      name: llm
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {set: [{name: x-backend, value: llm}]}
",
        ),
    ]))
    .await;
    proxy
        .post(
            "/v1/chat/completions",
            chat("hi"),
            &[
                ("x-team", "red"),
                ("x-tag", "zero"),
                ("x-remove-me", "1"),
                ("authorization", "Bearer client-key"),
            ],
        )
        .await
        .assert_ok();
    let seen = &a.requests()[0];
    assert_eq!(seen.header("x-team"), Some("blue"), "set replaces");
    let tags: Vec<&str> = seen
        .headers
        .iter()
        .filter(|(n, _)| n == "x-tag")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(tags, ["zero", "one"], "add appends");
    assert_eq!(seen.header("x-remove-me"), None);
    assert_eq!(
        seen.header("x-backend"),
        Some("llm"),
        "the backendRef's too"
    );
    assert_eq!(seen.header("authorization"), Some("Bearer sk-test-123"));
}

#[tokio::test]
async fn response_headers_are_changed_on_normal_streamed_and_error_answers() {
    let a = mock("a").await;
    let dead = dead_addr();
    let modifier = "    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: x-served-by, value: agentgateway}]
        remove: [x-mock-llm-instance]
";
    let proxy = start_proxy(&config(&[
        backend("llm", &[&[("a", a.addr())]], "", ""),
        backend("gone", &[&[("d", dead)]], "", ""),
        route_with(&format!(
            "  - matches: [{{path: {{value: /v1}}}}]\n{modifier}{TO_LLM}  - matches: [{{path: {{value: /down}}}}]\n{modifier}    backendRefs:\n    - {{group: agentgateway.dev, kind: AgentgatewayBackend, name: gone}}\n"
        )),
    ]))
    .await;
    let changed = |reply: &Reply| {
        assert_eq!(reply.headers["x-served-by"], "agentgateway", "{reply:?}");
        assert!(!reply.headers.contains_key("x-mock-llm-instance"));
    };
    let normal = proxy.chat(chat("hi")).await;
    normal.assert_ok();
    changed(&normal);

    let streamed = proxy
        .request(
            "POST",
            "/v1/chat/completions",
            Bytes::from(json!({"model": "", "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string()),
            &[],
        )
        .await;
    assert_eq!(streamed.status(), 200);
    assert_eq!(streamed.headers()["x-served-by"], "agentgateway");
    let body = streamed.into_body().collect().await.unwrap().to_bytes();
    assert!(!sse_data(&body).is_empty(), "the stream still flows");

    a.set_fault(Some(Fault::status(400)));
    let provider_error = proxy.chat(chat("hi")).await;
    assert_eq!(provider_error.status, 400);
    changed(&provider_error);

    let own_error = proxy
        .post("/down/v1/chat/completions", chat("hi"), &[])
        .await;
    assert_eq!(own_error.status, 503, "{own_error:?}");
    assert_eq!(own_error.error_code(), "no_healthy_provider");
    changed(&own_error);
}

#[tokio::test]
async fn a_redirect_is_answered_without_a_provider_request() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        backend("llm", &[&[("a", a.addr())]], "", ""),
        route_with(
            "  - matches: [{path: {value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: https
        hostname: new.example
        statusCode: 301
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /v1}
  - matches: [{path: {value: /moved}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /v1/models}}
",
        ),
    ]))
    .await;
    let moved = proxy
        .post("/old/chat/completions?x=1", chat("hi"), &[])
        .await;
    assert_eq!(moved.status, 301);
    assert_eq!(
        moved.headers["location"], "https://new.example/v1/chat/completions?x=1",
        "https's port 443 is left out"
    );
    let found = proxy
        .send("GET", "/moved/anything", Bytes::new(), &[])
        .await;
    assert_eq!(found.status, 302, "the default status");
    let port = proxy.addr.port();
    assert_eq!(
        found.headers["location"],
        format!("http://127.0.0.1:{port}/v1/models").as_str(),
        "the request's host and the listener's port"
    );
    assert_eq!(a.request_count(), 0, "no provider request");
}

#[tokio::test]
async fn a_rewritten_path_is_recognised_as_the_operation_it_becomes() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        backend("llm", &[&[("a", a.addr())]], "", ""),
        route_with(&format!(
            "  - matches: [{{path: {{value: /team-a}}}}]
    filters:
    - type: URLRewrite
      urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /}}}}
{TO_LLM}  - matches: [{{path: {{type: Exact, value: /ask}}}}]
    filters:
    - type: URLRewrite
      urlRewrite: {{path: {{type: ReplaceFullPath, replaceFullPath: /v1/chat/completions}}}}
{TO_LLM}"
        )),
    ]))
    .await;
    let reply = proxy
        .post("/team-a/v1/chat/completions", chat("hi"), &[])
        .await;
    reply.assert_ok();
    assert_eq!(reply.json()["object"], "chat.completion");
    let asked = proxy.post("/ask", chat("hi"), &[]).await;
    asked.assert_ok();
    assert_eq!(asked.json()["object"], "chat.completion");
    let requests = a.requests();
    assert_eq!(requests.len(), 2);
    for seen in &requests {
        assert_eq!(seen.path, "/v1/chat/completions");
        assert_eq!(
            seen.json().unwrap()["model"],
            "model-a",
            "the body was read as a chat completion: the provider's model replaced the client's"
        );
    }
}

#[tokio::test]
async fn the_rules_request_timeout_answers_504_in_the_clients_format() {
    let a = mock("a").await;
    a.set_fault(Some(Fault::Stall));
    let proxy = start_proxy(&config(&[
        backend("llm", &[&[("a", a.addr())]], "", ""),
        route_with(&format!("  - timeouts: {{request: 300ms}}\n{TO_LLM}")),
    ]))
    .await;
    let started = Instant::now();
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(reply.status, 504, "{reply:?}");
    assert_eq!(reply.error_code(), "timeout");
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("300ms")
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "not the backend's 600s"
    );
    let messages = proxy
        .post(
            "/v1/messages",
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        )
        .await;
    assert_eq!(messages.status, 504);
    assert_eq!(
        messages.json()["type"],
        "error",
        "Anthropic's shape on /v1/messages"
    );
}

#[tokio::test]
async fn the_backend_request_timeout_fails_over_to_the_next_provider() {
    let (slow, fast) = (mock("slow").await, mock("fast").await);
    slow.set_fault(Some(Fault::delay(Duration::from_secs(5))));
    let proxy = start_proxy(&config(&[
        backend(
            "llm",
            &[&[("slow", slow.addr())], &[("fast", fast.addr())]],
            "",
            "",
        ),
        route_with(&format!(
            "  - timeouts: {{request: 10s, backendRequest: 300ms}}\n{TO_LLM}"
        )),
    ]))
    .await;
    let started = Instant::now();
    let reply = proxy.chat(chat("hi")).await;
    reply.assert_ok();
    assert_eq!(reply.instance(), "fast");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(slow.request_count(), 1, "the slow provider was tried first");
}
