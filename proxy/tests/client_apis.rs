//! One endpoint for every client: Anthropic Messages and OpenAI Responses requests, routed by
//! their model through plain HTTPRoute header matches on `x-agentgateway-model`, served natively
//! by providers that speak the client's API and through chat completions by the others, with
//! usage, errors and cut streams in the client's own API.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;

use agentgateway_mock_llm::{Fault, MockLlm};
use bytes::Bytes;
use common::*;
use serde_json::{Value, json};

/// A backend with one provider of `kind` (`openai` or `anthropic`) serving `model`.
fn model_backend(name: &str, addr: SocketAddr, kind: &str, model: &str, keyed: bool) -> String {
    let auth = if keyed {
        "\n        policies: {auth: {secretRef: {name: openai-secret}}}"
    } else {
        ""
    };
    format!(
        "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ai:\n    groups:\n    - providers:\n      - name: {name}\n        host: {}\n        port: {}\n        {kind}: {{model: {model}}}{auth}\n",
        addr.ip(),
        addr.port()
    )
}

/// A route to `backend` for requests whose model header matches `value` (`type`: `Exact` or
/// `RegularExpression`).
fn model_route(backend: &str, match_type: &str, value: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {backend}, namespace: default}}\nspec:\n  rules:\n  - matches:\n    - headers: [{{name: x-agentgateway-model, type: {match_type}, value: '{value}'}}]\n    backendRefs: [{{name: {backend}, group: agentgateway.dev, kind: AgentgatewayBackend}}]\n"
    )
}

/// Three backends keyed by model: `gpt-*` to OpenAI (gateway key), `claude-*` to Anthropic
/// (gateway key), `llama-local` to a self-hosted model.
struct Models {
    proxy: Proxy,
    gpt: MockLlm,
    claude: MockLlm,
    local: MockLlm,
}

async fn models() -> Models {
    let (gpt, claude, local) = (mock("gpt").await, mock("claude").await, mock("local").await);
    let proxy = start_proxy(&config(&[
        GATEWAY_KEY_SECRET.to_string(),
        model_backend("gpt", gpt.addr(), "openai", "gpt-4o-mini", true),
        model_backend(
            "claude",
            claude.addr(),
            "anthropic",
            "claude-3-5-haiku",
            true,
        ),
        model_backend("local", local.addr(), "openai", "llama-local", false),
        model_route("gpt", "RegularExpression", "gpt-.*"),
        model_route("claude", "RegularExpression", "claude-.*"),
        model_route("local", "Exact", "llama-local"),
    ]))
    .await;
    Models {
        proxy,
        gpt,
        claude,
        local,
    }
}

fn messages(model: &str, text: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 64, "stream": stream,
        "messages": [{"role": "user", "content": format!("Reply with exactly: {text}")}]})
}

fn responses(model: &str, text: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "input": format!("Reply with exactly: {text}")})
}

/// `(event, data)` of each event of an SSE body.
fn events(body: &[u8]) -> Vec<(String, Value)> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let field = |name: &str| {
                e.lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                    .unwrap_or_default()
            };
            let data = field("data:");
            (
                field("event:"),
                serde_json::from_str(&data).unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// The text of an Anthropic event stream.
fn messages_text(body: &[u8]) -> String {
    events(body)
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str().map(str::to_string))
        .collect()
}

/// The text of a Responses event stream.
fn responses_text(body: &[u8]) -> String {
    events(body)
        .iter()
        .filter(|(e, _)| e == "response.output_text.delta")
        .filter_map(|(_, d)| d["delta"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn the_model_picks_the_route_and_a_clients_model_header_is_never_trusted() {
    let m = models().await;
    for (model, served_by) in [
        ("gpt-4o", &m.gpt),
        ("claude-3-opus", &m.claude),
        ("llama-local", &m.local),
    ] {
        let reply = m
            .proxy
            .post(
                "/v1/chat/completions",
                json!({"model": model, "messages": [{"role": "user", "content": "Reply with exactly: routed"}]}),
                // A client's own header would pick another route: it is replaced.
                &[("x-agentgateway-model", "llama-local")],
            )
            .await;
        reply.assert_ok();
        assert_eq!(reply.json()["choices"][0]["message"]["content"], "routed");
        let seen = served_by.requests();
        assert_eq!(seen.len(), 1, "{model} went to the wrong backend");
        assert_eq!(
            seen[0].header("x-agentgateway-model"),
            None,
            "the routing header stays in the gateway"
        );
        served_by.clear_requests();
    }
    let unknown = m
        .proxy
        .post(
            "/v1/chat/completions",
            json!({"model": "mistral-large", "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "model_not_found");
    assert!(
        unknown.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mistral-large")
    );
    // The Messages API gets Anthropic's error shape.
    let unknown = m
        .proxy
        .post("/v1/messages", messages("mistral-large", "x", false), &[])
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["type"], "error");
    assert_eq!(unknown.json()["error"]["type"], "not_found_error");
    // A request without a model matches no model-keyed route: no model to be found.
    let no_model = m
        .proxy
        .post(
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            &[],
        )
        .await;
    assert_eq!(no_model.status, 404);
    assert_eq!(no_model.error_code(), "route_not_found");
    assert_eq!(
        m.gpt.request_count() + m.claude.request_count() + m.local.request_count(),
        0
    );
}

#[tokio::test]
async fn the_model_list_names_what_the_routes_serve() {
    let m = models().await;
    let list = m.proxy.send("GET", "/v1/models", Bytes::new(), &[]).await;
    list.assert_ok();
    let ids: Vec<String> = list.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|model| model["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["gpt-4o-mini", "claude-3-5-haiku", "llama-local"]);
    assert_eq!(list.json()["data"][1]["owned_by"], "anthropic");
    let one = m
        .proxy
        .send("GET", "/v1/models/claude-3-5-haiku", Bytes::new(), &[])
        .await;
    one.assert_ok();
    assert_eq!(one.json()["id"], "claude-3-5-haiku");
    assert_eq!(one.json()["object"], "model");
    let missing = m
        .proxy
        .send("GET", "/v1/models/gpt-5", Bytes::new(), &[])
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "model_not_found");
    assert_eq!(
        m.gpt.request_count() + m.claude.request_count() + m.local.request_count(),
        0,
        "no provider is asked"
    );
}

#[tokio::test]
async fn messages_pass_to_anthropic_as_they_are_with_the_gateways_key() {
    let m = models().await;
    let mut body = messages("claude-3-opus", "native", false);
    body["metadata"] = json!({"user_id": "u-1"});
    let reply = m
        .proxy
        .post(
            "/v1/messages",
            body,
            &[
                ("x-api-key", "client-key"),
                ("anthropic-version", "2023-06-01"),
            ],
        )
        .await;
    reply.assert_ok();
    let message = reply.json();
    assert_eq!(message["type"], "message");
    assert_eq!(message["content"][0]["text"], "native");
    let seen = &m.claude.requests()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some("sk-test-123"));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    let sent = seen.json().unwrap();
    assert_eq!(sent["model"], "claude-3-5-haiku", "the provider's model");
    assert_eq!(sent["metadata"]["user_id"], "u-1", "the rest as it was");
    assert!(sent.get("stream_options").is_none());

    let streamed = m
        .proxy
        .post(
            "/v1/messages",
            messages("claude-3-opus", "streamed words", true),
            &[],
        )
        .await;
    streamed.assert_ok();
    assert_eq!(messages_text(&streamed.body), "streamed words");
    assert_eq!(events(&streamed.body).last().unwrap().0, "message_stop");
    let metrics = m.proxy.metrics().await;
    assert!(input_tokens(&metrics, "claude") > 0.0, "{metrics}");
    assert!(
        metrics.contains(
            r#"backend="default/claude",provider="claude",operation="messages",status="200"} 2"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn messages_to_an_openai_provider_come_back_in_anthropics_shape() {
    let m = models().await;
    let reply = m
        .proxy
        .post("/v1/messages", messages("gpt-4o", "translated", false), &[])
        .await;
    reply.assert_ok();
    let message = reply.json();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(
        message["content"][0],
        json!({"type": "text", "text": "translated"})
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert!(message["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(message["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let seen = &m.gpt.requests()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.json().unwrap()["max_tokens"], 64);

    let streamed = m
        .proxy
        .post(
            "/v1/messages",
            messages("gpt-4o", "one two three", true),
            &[],
        )
        .await;
    streamed.assert_ok();
    assert_eq!(
        streamed.headers["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let events = events(&streamed.body);
    assert_eq!(events[0].0, "message_start");
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert_eq!(messages_text(&streamed.body), "one two three");
    let delta = events.iter().find(|(e, _)| e == "message_delta").unwrap();
    assert!(delta.1["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let metrics = m.proxy.metrics().await;
    assert!(
        input_tokens(&metrics, "gpt") > 0.0,
        "usage is read: {metrics}"
    );
}

#[tokio::test]
async fn responses_pass_to_openai_with_their_state() {
    let m = models().await;
    let mut first = responses("gpt-4o", "first", false);
    first["store"] = json!(true);
    let reply = m.proxy.post("/v1/responses", first, &[]).await;
    reply.assert_ok();
    let response = reply.json();
    assert_eq!(response["object"], "response");
    assert_eq!(response["output"][0]["content"][0]["text"], "first");
    assert_eq!(m.gpt.requests()[0].path, "/v1/responses");
    let mut follow_up = responses("gpt-4o", "second", false);
    follow_up["previous_response_id"] = response["id"].clone();
    m.proxy
        .post("/v1/responses", follow_up, &[])
        .await
        .assert_ok();

    let streamed = m
        .proxy
        .post(
            "/v1/responses",
            responses("gpt-4o", "streamed here", true),
            &[],
        )
        .await;
    streamed.assert_ok();
    assert_eq!(responses_text(&streamed.body), "streamed here");
    assert_eq!(
        events(&streamed.body).last().unwrap().0,
        "response.completed"
    );
    let metrics = m.proxy.metrics().await;
    assert!(input_tokens(&metrics, "gpt") > 0.0, "{metrics}");
    assert!(
        metrics.contains(r#"operation="responses",status="200"} 3"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn responses_to_anthropic_are_translated_and_stateless() {
    let m = models().await;
    let reply = m
        .proxy
        .post(
            "/v1/responses",
            responses("claude-3-opus", "via claude", false),
            &[],
        )
        .await;
    reply.assert_ok();
    let response = reply.json();
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["output"][0]["content"][0]["text"], "via claude");
    assert!(response["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(m.claude.requests()[0].path, "/v1/messages");

    let streamed = m
        .proxy
        .post(
            "/v1/responses",
            responses("claude-3-opus", "a b c", true),
            &[],
        )
        .await;
    streamed.assert_ok();
    assert_eq!(responses_text(&streamed.body), "a b c");
    let events = events(&streamed.body);
    assert_eq!(events[0].0, "response.created");
    let completed = &events.last().unwrap().1;
    assert_eq!(completed["type"], "response.completed");
    assert!(
        completed["response"]["usage"]["output_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );

    for (field, value) in [
        ("previous_response_id", json!("resp_1")),
        ("store", json!(true)),
    ] {
        let mut body = responses("claude-3-opus", "x", false);
        body[field] = value;
        let refused = m.proxy.post("/v1/responses", body, &[]).await;
        assert_eq!(refused.status, 400, "{field}");
        let message = refused.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains(field), "{message}");
    }
    assert_eq!(m.claude.request_count(), 2, "refusals reach no provider");
}

#[tokio::test]
async fn a_stream_cut_after_content_ends_with_an_error_event_in_the_clients_api() {
    let m = models().await;
    // Translated (Messages → OpenAI), native (Messages → Anthropic), translated (Responses →
    // Anthropic).
    for (path, body, llm) in [
        (
            "/v1/messages",
            messages("gpt-4o", "one two three four five", true),
            &m.gpt,
        ),
        (
            "/v1/messages",
            messages("claude-3-opus", "one two three four five", true),
            &m.claude,
        ),
        (
            "/v1/responses",
            responses("claude-3-opus", "one two three four five", true),
            &m.claude,
        ),
    ] {
        llm.set_fault(Some(Fault::CutAfter(4)));
        let reply = m.proxy.post(path, body, &[]).await;
        llm.set_fault(None);
        assert_eq!(reply.status, 200, "{path}");
        let (event, data) = events(&reply.body).last().unwrap().clone();
        assert_eq!(
            event,
            "error",
            "{path}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        if path == "/v1/messages" {
            assert_eq!(
                data["type"],
                "error",
                "{path}: {}",
                String::from_utf8_lossy(&reply.body)
            );
            assert_eq!(data["error"]["type"], "api_error");
        } else {
            assert_eq!(data["type"], "error");
            assert_eq!(data["code"], "upstream_stream_interrupted");
        }
    }
}

#[tokio::test]
async fn a_provider_failing_before_content_is_retried_across_kinds_for_messages() {
    let (claude, local) = (mock("claude").await, mock("local").await);
    let backend = format!(
        "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata: {{name: mixed, namespace: default}}\nspec:\n  policies: {{retry: {{attempts: 1}}}}\n  ai:\n    groups:\n    - providers:\n      - {{name: claude, host: {}, port: {}, anthropic: {{model: claude-test}}, policies: {{auth: {{secretRef: {{name: openai-secret}}}}}}}}\n    - providers:\n      - {{name: local, host: {}, port: {}, openai: {{model: self-hosted}}}}\n",
        claude.addr().ip(),
        claude.addr().port(),
        local.addr().ip(),
        local.addr().port()
    );
    let proxy = start_proxy(&config(&[
        GATEWAY_KEY_SECRET.to_string(),
        backend,
        route("mixed", "mixed", None),
    ]))
    .await;
    claude.set_fault(Some(Fault::Status {
        status: 529,
        retry_after: None,
        error_type: Some("overloaded_error".into()),
    }));
    for stream in [false, true] {
        let reply = proxy
            .post("/v1/messages", messages("any", "failed over", stream), &[])
            .await;
        reply.assert_ok();
        let text = if stream {
            messages_text(&reply.body)
        } else {
            reply.json()["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(text, "failed over");
    }
    assert_eq!(local.request_count(), 2);
    assert!(claude.request_count() >= 1);
}

#[tokio::test]
async fn count_tokens_goes_to_anthropic_only() {
    let m = models().await;
    let body = json!({"model": "claude-3-opus", "messages": [{"role": "user", "content": "count these four words"}]});
    let counted = m.proxy.post("/v1/messages/count_tokens", body, &[]).await;
    counted.assert_ok();
    assert!(counted.json()["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(m.claude.requests()[0].path, "/v1/messages/count_tokens");
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let refused = m.proxy.post("/v1/messages/count_tokens", body, &[]).await;
    assert_eq!(refused.status, 404);
    assert_eq!(refused.json()["error"]["type"], "not_found_error");
    assert_eq!(m.gpt.request_count(), 0);
}

#[tokio::test]
async fn a_provider_error_reaches_a_messages_client_in_anthropics_shape() {
    let m = models().await;
    m.gpt.set_fault(Some(Fault::Status {
        status: 400,
        retry_after: None,
        error_type: None,
    }));
    let reply = m
        .proxy
        .post("/v1/messages", messages("gpt-4o", "x", false), &[])
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["type"], "error");
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
    // Unexpressible in chat completions: refused, naming the field, before any provider.
    let mut body = messages("gpt-4o", "x", false);
    body["top_k"] = json!(5);
    let refused = m.proxy.post("/v1/messages", body, &[]).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["error"]["type"], "invalid_request_error");
    assert!(
        refused.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("top_k")
    );
    assert_eq!(m.gpt.request_count(), 1);
}

#[tokio::test]
async fn an_anthropic_clients_own_key_reaches_a_keyless_openai_provider_as_a_bearer_token() {
    let m = models().await;
    m.proxy
        .post(
            "/v1/messages",
            messages("llama-local", "own key", false),
            &[("x-api-key", "sk-client-own")],
        )
        .await
        .assert_ok();
    let seen = &m.local.requests()[0];
    assert_eq!(seen.header("authorization"), Some("Bearer sk-client-own"));
    assert_eq!(seen.header("x-api-key"), None);
}
