//! Global rate limits and budgets through a real `redis-server` (Debian's package, started by
//! each test on a loopback port): two proxies, as two replicas of a Gateway, share one limit and
//! together admit no more than it allows; a stream admitted by one holds its tokens in the other;
//! a spent budget refuses every replica's requests; a Redis that goes away fails open, or closed
//! when the policy says so, and is used again once it is back.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use agentgateway_mock_llm::{MockLlm, MockLlmConfig};
use agentgateway_proxy::governance::shared::RedisSettings;
use bytes::Bytes;
use common::policy::*;
use common::redis::RedisServer;
use common::*;
use futures_util::future::join_all;
use http_body_util::BodyExt;
use serde_json::json;

/// Generous: these tests check behaviour, not latency, on a machine shared with builds.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

fn settings(redis: &RedisServer) -> RedisSettings {
    RedisSettings {
        url: redis.url(),
        password: None,
        timeout: REDIS_TIMEOUT,
    }
}

/// Backend `llm` at `upstream` (`provider_extra` under its provider), routes `llm` (`/`) and
/// `strict` (`/strict`), and `policies`.
fn manifests(upstream: &MockLlm, provider_extra: &str, policies: &[String]) -> String {
    let mut docs = vec![
        backend("llm", &[&[("a", upstream.addr())]], provider_extra, ""),
        route("llm", "llm", None),
        route("strict", "llm", Some("/strict")),
    ];
    docs.extend(policies.iter().cloned());
    config(&docs)
}

/// Two proxies (replicas) on the same manifests and Redis.
async fn replicas(yaml: &str, redis: &RedisServer) -> [Proxy; 2] {
    [
        start_proxy_redis(yaml, settings(redis)).await,
        start_proxy_redis(yaml, settings(redis)).await,
    ]
}

#[tokio::test]
async fn two_replicas_share_one_global_limit() {
    let redis = RedisServer::start();
    let upstream = mock("a").await;
    let spec = "  rateLimit: {global: [{requests: 10, per: Day, key: route}]}\n";
    let yaml = manifests(&upstream, "", &[policy_on_route("shared", "llm", spec)]);
    let proxies = replicas(&yaml, &redis).await;
    let requests = (0..30).map(|i| proxies[i % 2].chat(chat("hi")));
    let replies = join_all(requests).await;
    let admitted = replies.iter().filter(|r| r.status == 200).count();
    let refused: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!(
        admitted,
        10,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(refused.len(), 20);
    for reply in refused {
        assert_eq!(reply.error_code(), "rate_limit_exceeded");
        assert_eq!(header(reply, "x-ratelimit-remaining-requests"), "0");
        assert!(header(reply, "retry-after").parse::<u64>().unwrap() >= 1);
    }
    assert_eq!(upstream.request_count(), 10);
    for proxy in &proxies {
        let metrics = proxy.metrics().await;
        assert!(
            metrics.contains(
                "agentgateway_rate_limit_decisions_total{scope=\"global\",result=\"rejected\"}"
            ),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn a_stream_admitted_by_one_replica_holds_its_tokens_in_the_other() {
    let redis = RedisServer::start();
    let upstream = MockLlm::start(MockLlmConfig {
        name: "slow".into(),
        chunk_delay: Duration::from_millis(30),
        ..Default::default()
    })
    .await
    .unwrap();
    let spec = "  rateLimit: {global: [{tokens: 3000, per: Day, key: route}]}\n";
    let yaml = manifests(&upstream, "", &[policy_on_route("shared", "llm", spec)]);
    let [one, two] = replicas(&yaml, &redis).await;

    let stream = json!({"model": "m", "stream": true, "max_tokens": 2000,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "tell me a story"}]});
    let first = one
        .request(
            "POST",
            "/v1/chat/completions",
            Bytes::from(stream.to_string()),
            &[],
        )
        .await;
    assert_eq!(first.status(), 200);
    let refused = two.post("/v1/chat/completions", stream.clone(), &[]).await;
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(refused.error_code(), "rate_limit_exceeded");
    let remaining: u64 = header(&refused, "x-ratelimit-remaining-tokens")
        .parse()
        .unwrap();
    assert_eq!(remaining, 3000 - reserved(&stream, 2000));

    // The stream ends on replica one; replica two sees the tokens it really used.
    let body = first.into_body().collect().await.unwrap().to_bytes();
    let used = streamed_usage(&body);
    // The correction lands as the response's last bytes leave: ask until admitted.
    let again = until_admitted(&two, &stream).await;
    let remaining: u64 = header(&again, "x-ratelimit-remaining-tokens")
        .parse()
        .unwrap();
    assert_eq!(remaining, 3000 - used - reserved(&stream, 2000));
}

#[tokio::test]
async fn a_spent_budget_refuses_every_replica_until_the_period_ends() {
    let redis = RedisServer::start();
    let upstream = mock("a").await;
    // Ten cents a token: the first request spends the whole budget.
    let cost = "        cost: {inputPerMillion: 100000, outputPerMillion: 100000}\n";
    let spec = format!("{AUTH}  budget: {{usd: 0.5, per: Month, key: consumer}}\n");
    let yaml = manifests(
        &upstream,
        cost,
        &[
            consumer("alice", "sk-alice"),
            consumer("bob", "sk-bob"),
            policy_on_route("budget", "llm", &spec),
        ],
    );
    let [one, two] = replicas(&yaml, &redis).await;
    let alice = bearer("sk-alice");
    one.post(
        "/v1/chat/completions",
        chat("hi"),
        &[("authorization", &alice)],
    )
    .await
    .assert_ok();
    let started = Instant::now();
    let refused = loop {
        let reply = two
            .post(
                "/v1/chat/completions",
                chat("hi"),
                &[("authorization", &alice)],
            )
            .await;
        if reply.status == 429 {
            break reply;
        }
        reply.assert_ok();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the spend never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused.error_code(), "insufficient_quota");
    assert_eq!(refused.json()["error"]["type"], "insufficient_quota");
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=31 * 86_400).contains(&retry_after), "{retry_after}");
    // Bob's budget is his own.
    one.post(
        "/v1/chat/completions",
        chat("hi"),
        &[("x-api-key", "sk-bob")],
    )
    .await
    .assert_ok();
}

#[tokio::test]
async fn redis_going_away_fails_open_by_default_and_closed_when_asked() {
    let mut redis = RedisServer::start();
    let upstream = mock("a").await;
    let open = "  rateLimit: {global: [{requests: 1000, per: Day, key: route}]}\n";
    let closed = format!("{open}  failureMode: Closed\n");
    let yaml = manifests(
        &upstream,
        "",
        &[
            policy_on_route("open", "llm", open),
            policy_on_route("closed", "strict", &closed),
        ],
    );
    let proxy = start_proxy_redis(&yaml, settings(&redis)).await;
    proxy.chat(chat("hi")).await.assert_ok();
    proxy
        .post("/strict/v1/chat/completions", chat("hi"), &[])
        .await
        .assert_ok();

    redis.kill();
    let admitted = proxy.chat(chat("hi")).await;
    admitted.assert_ok();
    let refused = proxy
        .post("/strict/v1/chat/completions", chat("hi"), &[])
        .await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.error_code(), "rate_limit_unavailable");
    assert_eq!(header(&refused, "retry-after"), "1");
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(
            "agentgateway_rate_limit_decisions_total{scope=\"global\",result=\"failed_open\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        "agentgateway_rate_limit_decisions_total{scope=\"global\",result=\"failed_closed\"} 1"
    ));

    // Redis is back: the shared limit is counted again without a restart of the proxy.
    redis.restart();
    let started = Instant::now();
    loop {
        let reply = proxy
            .post("/strict/v1/chat/completions", chat("hi"), &[])
            .await;
        if reply.status == 200 {
            assert_eq!(header(&reply, "x-ratelimit-limit-requests"), "1000");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{reply:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_config_with_global_limits_needs_redis() {
    let upstream = mock("a").await;
    let spec = "  rateLimit: {global: [{requests: 10, per: Day, key: route}]}\n";
    let yaml = manifests(&upstream, "", &[policy_on_route("shared", "llm", spec)]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), &yaml).unwrap();
    let options = agentgateway_proxy::ProxyOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        ready_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        limits: Default::default(),
        access_log: Default::default(),
        redis: None,
        otlp: None,
    };
    let source = agentgateway_proxy::source::file::FileSource::new(dir.path());
    let error = match agentgateway_proxy::start(options, source).await {
        Ok(_) => panic!("a config with global limits started without Redis"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("--redis-url"), "{error}");
}
