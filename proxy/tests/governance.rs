//! AgentgatewayPolicy in the proxy, with in-process counters: client API keys (401 in the
//! client's API shape, the key never forwarded, rotation live), local rate limits on requests and
//! tokens (OpenAI's `x-ratelimit-*` headers, 429 with `Retry-After`, tokens reserved before a
//! stream starts and corrected when it ends) and the cost of what consumers spent.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use agentgateway_mock_llm::{MockLlm, MockLlmConfig};
use bytes::Bytes;
use common::policy::*;
use common::*;
use http_body_util::BodyExt;
use serde_json::json;

/// An AgentgatewayPolicy on the HTTPRoute `llm` with `spec` (YAML lines under `spec:`).
fn policy(spec: &str) -> String {
    policy_on_route("team-a", "llm", spec)
}

/// Backend `llm` (one provider at `upstream` with the gateway's key, `provider_extra` under it),
/// its route, the consumers alice and bob, and a policy.
fn governed(upstream: &MockLlm, provider_extra: &str, policy_spec: &str) -> String {
    config(&[
        GATEWAY_KEY_SECRET.to_string(),
        backend(
            "llm",
            &[&[("a", upstream.addr())]],
            &format!("{GATEWAY_KEY_AUTH}{provider_extra}"),
            "",
        ),
        route("llm", "llm", None),
        consumer("alice", "sk-alice"),
        consumer("bob", "sk-bob"),
        policy(policy_spec),
    ])
}

#[tokio::test]
async fn api_keys_admit_consumers_and_never_reach_the_provider() {
    let upstream = mock("a").await;
    let proxy = start_proxy(&governed(&upstream, "", AUTH)).await;

    let missing = proxy.chat(chat("hi")).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.error_code(), "invalid_api_key");
    let wrong = proxy
        .post(
            "/v1/chat/completions",
            chat("hi"),
            &[("authorization", "Bearer sk-mallory")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.error_code(), "invalid_api_key");
    assert_eq!(upstream.request_count(), 0, "refused requests go nowhere");

    let alice = bearer("sk-alice");
    proxy
        .post(
            "/v1/chat/completions",
            chat("hi"),
            &[("authorization", &alice)],
        )
        .await
        .assert_ok();
    proxy
        .post(
            "/v1/chat/completions",
            chat("hi"),
            &[("x-api-key", "sk-bob")],
        )
        .await
        .assert_ok();
    for request in upstream.requests() {
        assert_eq!(request.header("authorization"), Some("Bearer sk-test-123"));
        assert_eq!(request.header("x-api-key"), None);
        let text = format!("{request:?}");
        assert!(
            !text.contains("sk-alice") && !text.contains("sk-bob"),
            "{text}"
        );
    }

    // Anthropic's clients get Anthropic's error shape.
    let messages = proxy
        .post(
            "/v1/messages",
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        )
        .await;
    assert_eq!(messages.status, 401);
    let body = messages.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");

    // The model list needs a key too.
    let models = proxy.send("GET", "/v1/models", Bytes::new(), &[]).await;
    assert_eq!(models.status, 401);
    let models = proxy
        .send(
            "GET",
            "/v1/models",
            Bytes::new(),
            &[("x-api-key", "sk-alice")],
        )
        .await;
    assert_eq!(models.json()["data"][0]["id"], "model-a");

    // Metrics name the consumer, never a key.
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("consumer=\"alice\"") && metrics.contains("consumer=\"bob\""),
        "{metrics}"
    );
    assert!(!metrics.contains("sk-alice") && !metrics.contains("sk-bob"));
}

#[tokio::test]
async fn a_rotated_key_is_live_and_the_old_one_refused() {
    let upstream = mock("a").await;
    let proxy = start_proxy(&governed(&upstream, "", AUTH)).await;
    let old = bearer("sk-alice");
    proxy
        .post(
            "/v1/chat/completions",
            chat("hi"),
            &[("authorization", &old)],
        )
        .await
        .assert_ok();
    proxy.write_config(
        &governed(&upstream, "", AUTH).replace("api-key: sk-alice", "api-key: sk-alice-2"),
    );
    let started = std::time::Instant::now();
    loop {
        let new = proxy
            .post(
                "/v1/chat/completions",
                chat("hi"),
                &[("authorization", "Bearer sk-alice-2")],
            )
            .await;
        if new.status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{new:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = proxy
        .post(
            "/v1/chat/completions",
            chat("hi"),
            &[("authorization", &old)],
        )
        .await;
    assert_eq!(refused.status, 401);
    println!("rotation live after {:?}", started.elapsed());
}

#[tokio::test]
async fn a_local_request_limit_answers_429_with_openai_headers_per_consumer() {
    let upstream = mock("a").await;
    let spec =
        format!("{AUTH}  rateLimit: {{local: [{{requests: 3, per: Day, key: consumer}}]}}\n");
    let proxy = start_proxy(&governed(&upstream, "", &spec)).await;
    let alice = bearer("sk-alice");
    for remaining in ["2", "1", "0"] {
        let reply = proxy
            .post(
                "/v1/chat/completions",
                chat("hi"),
                &[("authorization", &alice)],
            )
            .await;
        reply.assert_ok();
        assert_eq!(header(&reply, "x-ratelimit-limit-requests"), "3");
        assert_eq!(header(&reply, "x-ratelimit-remaining-requests"), remaining);
        assert!(header(&reply, "x-ratelimit-reset-requests").ends_with('s'));
    }
    let refused = proxy
        .post(
            "/v1/chat/completions",
            chat("hi"),
            &[("authorization", &alice)],
        )
        .await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.error_code(), "rate_limit_exceeded");
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&refused, "x-ratelimit-remaining-requests"), "0");
    assert_eq!(upstream.request_count(), 3);

    // Another consumer has its own counter.
    proxy
        .post(
            "/v1/chat/completions",
            chat("hi"),
            &[("x-api-key", "sk-bob")],
        )
        .await
        .assert_ok();
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(
            "agentgateway_rate_limit_decisions_total{scope=\"local\",result=\"rejected\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        "agentgateway_rate_limit_decisions_total{scope=\"local\",result=\"admitted\"} 4"
    ));
}

#[tokio::test]
async fn tokens_are_reserved_before_a_stream_starts_and_corrected_when_it_ends() {
    let upstream = MockLlm::start(MockLlmConfig {
        name: "slow".into(),
        chunk_delay: Duration::from_millis(30),
        ..Default::default()
    })
    .await
    .unwrap();
    let spec = "  rateLimit: {local: [{tokens: 3000, per: Day, key: route}]}\n";
    let proxy = start_proxy(&config(&[
        backend("llm", &[&[("a", upstream.addr())]], "", ""),
        route("llm", "llm", None),
        policy(spec),
    ]))
    .await;

    let stream = json!({"model": "m", "stream": true, "max_tokens": 2000,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "tell me a story"}]});
    let first = proxy
        .request(
            "POST",
            "/v1/chat/completions",
            Bytes::from(stream.to_string()),
            &[],
        )
        .await;
    assert_eq!(first.status(), 200);
    let remaining: u64 = first.headers()["x-ratelimit-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(remaining, 3000 - reserved(&stream, 2000));

    // While the stream runs, its reservation holds: a second one does not fit.
    let second = proxy
        .post("/v1/chat/completions", stream.clone(), &[])
        .await;
    assert_eq!(second.status, 429, "{second:?}");
    assert_eq!(second.error_code(), "rate_limit_exceeded");
    assert_eq!(second.json()["error"]["type"], "tokens");

    // The stream ends: its reservation becomes what the provider counted.
    let body = first.into_body().collect().await.unwrap().to_bytes();
    let used = streamed_usage(&body);
    assert!(used < 200, "{used}");
    // The correction lands as the response's last bytes leave: ask until admitted.
    let again = until_admitted(&proxy, &stream).await;
    let remaining: u64 = header(&again, "x-ratelimit-remaining-tokens")
        .parse()
        .unwrap();
    assert_eq!(remaining, 3000 - used - reserved(&stream, 2000));
}

#[tokio::test]
async fn cost_is_metered_per_consumer_at_the_providers_prices() {
    let upstream = mock("a").await;
    let cost = "        cost: {inputPerMillion: 1000, outputPerMillion: 3000}\n";
    let proxy = start_proxy(&governed(&upstream, cost, AUTH)).await;
    let reply = proxy
        .post(
            "/v1/chat/completions",
            chat("hello there"),
            &[("x-api-key", "sk-alice")],
        )
        .await;
    reply.assert_ok();
    let usage = &reply.json()["usage"];
    let (input, output) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    let expected = (input * 1000 + output * 3000) as f64 / 1e6;
    let started = std::time::Instant::now();
    loop {
        let metrics = proxy.metrics().await;
        let line = metrics.lines().find(|l| {
            l.starts_with("agentgateway_gen_ai_client_cost_usd_total{")
                && l.contains("consumer=\"alice\"")
        });
        if let Some(line) = line {
            let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert!((value - expected).abs() < 1e-9, "{line} vs {expected}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
