//! Routing, request rewriting, credentials, pass-through operations and error bodies.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use bytes::Bytes;
use common::*;
use serde_json::json;

#[tokio::test]
async fn the_providers_model_replaces_the_requests_model() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    let reply = proxy.chat(json!({"model": "", "messages": [{"role": "user", "content": "Reply with exactly: agentgateway works"}]})).await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["model"], "model-a");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "agentgateway works"
    );
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(a.requests()[0].json().unwrap()["model"], "model-a");
    let reply = proxy.chat(json!({"model": "gpt-4o", "messages": []})).await;
    assert_eq!(
        reply.json()["model"],
        "model-a",
        "replaced even when the client names one"
    );
}

#[tokio::test]
async fn without_a_provider_model_the_requests_model_is_kept_and_an_absent_one_is_a_400() {
    let a = mock("a").await;
    let yaml = format!(
        "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata:\n  name: open\nspec:\n  ai:\n    provider:\n      host: 127.0.0.1\n      port: {}\n      openai: {{}}\n",
        a.addr().port()
    );
    let proxy = start_proxy(&config(&[yaml, route("open", "open", None)])).await;
    let reply = proxy
        .chat(json!({"model": "client-model", "messages": []}))
        .await;
    assert_eq!(reply.json()["model"], "client-model");
    let reply = proxy.chat(json!({"model": "", "messages": []})).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "model_required");
    let reply = proxy.chat(json!({"messages": []})).await;
    assert_eq!(reply.status, 400);
    assert_eq!(a.request_count(), 1);
}

#[tokio::test]
async fn the_secrets_key_is_sent_as_bearer_and_the_clients_key_is_not_forwarded() {
    let a = mock("a").await;
    let proxy = start_proxy(&keyed_backend(a.addr())).await;
    let reply = proxy
        .post(
            "/v1/chat/completions",
            chat("hi"),
            &[("authorization", "Bearer client-key")],
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = &a.requests()[0];
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer sk-test-123"),
        "leading Bearer stripped once, sent as Bearer"
    );
    let auths: Vec<_> = seen
        .headers
        .iter()
        .filter(|(k, _)| k == "authorization")
        .collect();
    assert_eq!(auths.len(), 1);
    let metrics = proxy.metrics().await;
    assert!(!metrics.contains("sk-test-123"));
}

#[tokio::test]
async fn a_provider_without_a_key_receives_the_clients_authorization() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        backend("open", &[&[("a", a.addr())]], "", ""),
        route("open", "open", None),
    ]))
    .await;
    proxy
        .post(
            "/v1/chat/completions",
            chat("hi"),
            &[("authorization", "Bearer client-key")],
        )
        .await;
    assert_eq!(
        a.requests()[0].header("authorization"),
        Some("Bearer client-key")
    );
}

#[tokio::test]
async fn models_are_listed_and_embeddings_and_completions_pass_through_to_the_provider() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    let models = proxy.send("GET", "/v1/models", Bytes::new(), &[]).await;
    assert_eq!(models.status, 200);
    assert_eq!(models.json()["object"], "list");
    assert_eq!(
        models.json()["data"],
        json!([{"id": "model-a", "object": "model", "created": 0, "owned_by": "openai"}]),
        "the gateway lists the configured models itself"
    );
    let embeddings = proxy
        .post(
            "/v1/embeddings",
            json!({"model": "", "input": "hello"}),
            &[],
        )
        .await;
    assert_eq!(embeddings.status, 200);
    assert_eq!(embeddings.json()["data"][0]["object"], "embedding");
    let completions = proxy
        .post(
            "/v1/completions",
            json!({"model": "", "prompt": "Reply with exactly: ok"}),
            &[],
        )
        .await;
    assert_eq!(completions.status, 200);
    let paths: Vec<String> = a
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(paths, ["POST /v1/embeddings", "POST /v1/completions"]);
    assert_eq!(a.requests()[1].json().unwrap()["model"], "model-a");
}

#[tokio::test]
async fn no_route_is_a_404_with_an_openai_error() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", Some("/v1")),
    ]))
    .await;
    let reply = proxy.post("/v2/chat/completions", chat("hi"), &[]).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_code(), "route_not_found");
    assert_eq!(reply.headers["content-type"], "application/json");
}

#[tokio::test]
async fn invalid_json_is_a_400_and_never_reaches_the_provider() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    for body in [&b"{not json"[..], b"[]", b"", b"{\"model\": 7}"] {
        let reply = proxy
            .send(
                "POST",
                "/v1/chat/completions",
                Bytes::from_static(body),
                &[],
            )
            .await;
        assert_eq!(reply.status, 400, "{body:?}");
        reply.error_code();
    }
    assert_eq!(a.request_count(), 0);
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    let big = json!({"model": "", "messages": [{"role": "user", "content": "x".repeat(11 * 1024 * 1024)}]});
    let reply = proxy.chat(big).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error_code(), "request_too_large");
    assert_eq!(a.request_count(), 0);
}

#[tokio::test]
async fn get_on_chat_completions_is_a_405() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    let reply = proxy
        .send("GET", "/v1/chat/completions", Bytes::new(), &[])
        .await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.headers["allow"], "POST");
    reply.error_code();
}

#[tokio::test]
async fn the_longest_path_prefix_wins_and_ties_go_to_the_older_route() {
    let (a, b, c) = (mock("a").await, mock("b").await, mock("c").await);
    let proxy = start_proxy(&config(&[
        backend("ba", &[&[("a", a.addr())]], "", ""),
        backend("bb", &[&[("b", b.addr())]], "", ""),
        backend("bc", &[&[("c", c.addr())]], "", ""),
        route("older-catch-all", "ba", None),
        route("newer-catch-all", "bb", None),
        route("chat", "bc", Some("/v1/chat")),
    ]))
    .await;
    assert_eq!(proxy.chat(chat("hi")).await.instance(), "c");
    assert_eq!(
        proxy
            .post("/v1/embeddings", json!({"model": "", "input": "x"}), &[])
            .await
            .instance(),
        "a"
    );
}

#[tokio::test]
async fn weighted_backend_refs_split_traffic() {
    let (a, b) = (mock("a").await, mock("b").await);
    let split = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: split\nspec:\n  rules:\n  - backendRefs:\n    - {name: ba, group: agentgateway.dev, kind: AgentgatewayBackend, weight: 3}\n    - {name: bb, group: agentgateway.dev, kind: AgentgatewayBackend, weight: 1}\n";
    let proxy = start_proxy(&config(&[
        backend("ba", &[&[("a", a.addr())]], "", ""),
        backend("bb", &[&[("b", b.addr())]], "", ""),
        split.to_string(),
    ]))
    .await;
    // 400 requests: a 3:1 split falls under 2:1 with a chance of about 1 in 10^4.
    for _ in 0..400 {
        assert_eq!(proxy.chat(chat("hi")).await.status, 200);
    }
    let (na, nb) = (a.request_count(), b.request_count());
    assert!(na > nb * 2 && nb > 20, "3:1 split, got {na}:{nb}");
}

#[tokio::test]
async fn header_and_method_matches_select_rules() {
    let (a, b) = (mock("a").await, mock("b").await);
    let matched = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: by-team\nspec:\n  rules:\n  - matches:\n    - headers:\n      - {name: X-Team, value: blue}\n      method: POST\n    backendRefs:\n    - {name: bb, group: agentgateway.dev, kind: AgentgatewayBackend}\n  - backendRefs:\n    - {name: ba, group: agentgateway.dev, kind: AgentgatewayBackend}\n";
    let proxy = start_proxy(&config(&[
        backend("ba", &[&[("a", a.addr())]], "", ""),
        backend("bb", &[&[("b", b.addr())]], "", ""),
        matched.to_string(),
    ]))
    .await;
    assert_eq!(
        proxy
            .post("/v1/chat/completions", chat("hi"), &[("x-team", "blue")])
            .await
            .instance(),
        "b"
    );
    assert_eq!(
        proxy
            .post("/v1/chat/completions", chat("hi"), &[("x-team", "red")])
            .await
            .instance(),
        "a"
    );
}

#[tokio::test]
async fn a_route_under_a_prefix_sends_the_provider_its_own_api_path() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", Some("/team-a")),
    ]))
    .await;
    let reply = proxy
        .post(
            "/team-a/v1/chat/completions",
            chat("Reply with exactly: prefixed"),
            &[],
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["choices"][0]["message"]["content"], "prefixed");
    let models = proxy
        .send("GET", "/team-a/v1/models", Bytes::new(), &[])
        .await;
    assert_eq!(models.status, 200);
    assert_eq!(models.json()["data"][0]["id"], "model-a");
    let paths: Vec<String> = a.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/v1/chat/completions"]);
}
