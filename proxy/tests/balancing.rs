//! Power-of-two-choices, passive health, failover between groups, retries.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agentgateway_mock_llm::Fault;
use common::*;

#[tokio::test]
async fn p2c_spreads_load_across_two_healthy_providers() {
    let (a, b) = (mock("a").await, mock("b").await);
    let proxy = start_proxy(&config(&[
        backend("pool", &[&[("a", a.addr()), ("b", b.addr())]], "", ""),
        route("pool", "pool", None),
    ]))
    .await;
    let mut served: HashMap<String, u32> = HashMap::new();
    for _ in 0..200 {
        let reply = proxy.chat(chat("hi")).await;
        assert_eq!(reply.status, 200);
        *served.entry(reply.instance().to_string()).or_default() += 1;
    }
    eprintln!("served: {served:?}");
    assert!(
        served["a"] >= 50 && served["b"] >= 50,
        "unfair share: {served:?}"
    );
}

#[tokio::test]
async fn a_dead_provider_costs_no_client_errors_while_another_is_healthy() {
    let b = mock("b").await;
    let proxy = start_proxy(&config(&[
        backend("pool", &[&[("dead", dead_addr()), ("b", b.addr())]], "", ""),
        route("pool", "pool", None),
    ]))
    .await;
    for _ in 0..50 {
        let reply = proxy.chat(chat("hi")).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.instance(), "b");
    }
    let metrics = proxy.metrics().await;
    assert!(
        metrics
            .contains(r#"agentgateway_provider_healthy{backend="default/pool",provider="dead"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"agentgateway_provider_evictions_total{backend="default/pool",provider="dead"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_failing_provider_is_retried_elsewhere_without_client_errors() {
    let (a, b) = (mock("a").await, mock("b").await);
    a.set_fault(Some(Fault::status(500)));
    let proxy = start_proxy(&config(&[
        backend("pool", &[&[("a", a.addr()), ("b", b.addr())]], "", ""),
        route("pool", "pool", None),
    ]))
    .await;
    for _ in 0..20 {
        let reply = proxy.chat(chat("hi")).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.instance(), "b");
    }
    // Evicted after its first failure: only one request reached it.
    assert_eq!(a.request_count(), 1);
}

#[tokio::test]
async fn group_two_serves_only_while_group_one_is_evicted_and_group_one_takes_traffic_back() {
    let (primary, backup) = (mock("primary").await, mock("backup").await);
    let eviction = "  policies:\n    health:\n      eviction:\n        duration: 1s\n";
    let proxy = start_proxy(&config(&[
        backend(
            "pool",
            &[&[("primary", primary.addr())], &[("backup", backup.addr())]],
            "",
            eviction,
        ),
        route("pool", "pool", None),
    ]))
    .await;
    for _ in 0..10 {
        assert_eq!(proxy.chat(chat("hi")).await.instance(), "primary");
    }
    assert_eq!(backup.request_count(), 0);
    primary.push_fault(Fault::status(503));
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(
        (reply.status.as_u16(), reply.instance()),
        (200, "backup"),
        "retried on group 2"
    );
    let evicted_at = Instant::now();
    while evicted_at.elapsed() < Duration::from_millis(800) {
        assert_eq!(proxy.chat(chat("hi")).await.instance(), "backup");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..5 {
        assert_eq!(
            proxy.chat(chat("hi")).await.instance(),
            "primary",
            "group 1 takes traffic back"
        );
    }
}

#[tokio::test]
async fn retry_after_of_a_429_sets_the_eviction() {
    let (a, b) = (mock("a").await, mock("b").await);
    let proxy = start_proxy(&config(&[
        backend("pool", &[&[("a", a.addr())], &[("b", b.addr())]], "", ""),
        route("pool", "pool", None),
    ]))
    .await;
    a.push_fault(Fault::status(429).with_retry_after("2"));
    let limited_at = Instant::now();
    assert_eq!(proxy.chat(chat("hi")).await.instance(), "b");
    // Default backoff would be 5 s; Retry-After says 2 s.
    while limited_at.elapsed() < Duration::from_millis(1800) {
        assert_eq!(proxy.chat(chat("hi")).await.instance(), "b");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(proxy.chat(chat("hi")).await.instance(), "a");
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_understood() {
    let (a, b) = (mock("a").await, mock("b").await);
    let proxy = start_proxy(&config(&[
        backend("pool", &[&[("a", a.addr())], &[("b", b.addr())]], "", ""),
        route("pool", "pool", None),
    ]))
    .await;
    let at = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
    a.push_fault(Fault::status(429).with_retry_after(at));
    assert_eq!(proxy.chat(chat("hi")).await.instance(), "b");
    tokio::time::sleep(Duration::from_millis(5500)).await;
    // Longer than the 5 s default backoff: the date decided.
    assert_eq!(proxy.chat(chat("hi")).await.instance(), "b");
}

#[tokio::test]
async fn quota_exhaustion_evicts_for_long() {
    let (a, b) = (mock("a").await, mock("b").await);
    let short = "  policies:\n    health:\n      eviction:\n        duration: 100ms\n        maxDuration: 200ms\n";
    let proxy = start_proxy(&config(&[
        backend("pool", &[&[("a", a.addr())], &[("b", b.addr())]], "", short),
        route("pool", "pool", None),
    ]))
    .await;
    a.push_fault(Fault::status(429).with_error_type("insufficient_quota"));
    assert_eq!(proxy.chat(chat("hi")).await.instance(), "b");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        proxy.chat(chat("hi")).await.instance(),
        "b",
        "still out well past maxDuration"
    );
    assert_eq!(a.request_count(), 1);
}

#[tokio::test]
async fn a_rejected_gateway_key_evicts_the_provider_and_another_serves() {
    let (a, b) = (mock("a").await, mock("b").await);
    a.set_fault(Some(Fault::status(401)));
    let proxy = start_proxy(&config(&[
        GATEWAY_KEY_SECRET.to_string(),
        backend(
            "pool",
            &[&[("a", a.addr()), ("b", b.addr())]],
            GATEWAY_KEY_AUTH,
            "",
        ),
        route("pool", "pool", None),
    ]))
    .await;
    for _ in 0..10 {
        assert_eq!(proxy.chat(chat("hi")).await.instance(), "b");
    }
    assert!(a.request_count() <= 1);
}

#[tokio::test]
async fn when_every_gateway_key_is_rejected_the_client_gets_502_naming_upstream_credentials() {
    let a = mock("a").await;
    a.set_fault(Some(Fault::status(403)));
    let proxy = start_proxy(&config(&[
        GATEWAY_KEY_SECRET.to_string(),
        backend("one", &[&[("a", a.addr())]], GATEWAY_KEY_AUTH, ""),
        route("one", "one", None),
    ]))
    .await;
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.error_code(), "upstream_credentials_rejected");
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("client's own key was not at fault")
    );
}

#[tokio::test]
async fn a_one_provider_backend_survives_a_blip_because_the_evicted_provider_is_still_tried() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    a.push_fault(Fault::status(500));
    let first = proxy.chat(chat("hi")).await;
    assert_eq!(first.status, 503, "{first:?}");
    assert!(first.headers.contains_key("retry-after"));
    assert_eq!(first.error_code(), "no_healthy_provider");
    // Evicted now, but the only provider: tried anyway, and it has recovered.
    let second = proxy.chat(chat("hi")).await;
    assert_eq!(second.status, 200, "{second:?}");
}

#[tokio::test]
async fn when_every_provider_is_down_the_answer_is_503_with_retry_after() {
    let proxy = start_proxy(&config(&[
        backend(
            "down",
            &[
                &[("x", dead_addr()), ("y", dead_addr())],
                &[("z", dead_addr())],
            ],
            "",
            "",
        ),
        route("down", "down", None),
    ]))
    .await;
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.error_code(), "no_healthy_provider");
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
}

#[tokio::test]
async fn retries_are_bounded_by_the_retry_policy() {
    let mocks = [
        mock("a").await,
        mock("b").await,
        mock("c").await,
        mock("d").await,
    ];
    for m in &mocks {
        m.set_fault(Some(Fault::status(500)));
    }
    let group: Vec<(&str, std::net::SocketAddr)> = mocks
        .iter()
        .zip(["a", "b", "c", "d"])
        .map(|(m, n)| (n, m.addr()))
        .collect();
    let retry = "  policies:\n    retry:\n      attempts: 1\n";
    let proxy = start_proxy(&config(&[
        backend("pool", &[&group], "", retry),
        route("pool", "pool", None),
    ]))
    .await;
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(reply.status, 503);
    let attempts: usize = mocks.iter().map(|m| m.request_count()).sum();
    assert_eq!(attempts, 2, "one attempt and one retry");
}

#[tokio::test]
async fn client_errors_from_a_provider_pass_through_and_are_not_retried() {
    let (a, b) = (mock("a").await, mock("b").await);
    let proxy = start_proxy(&config(&[
        backend("pool", &[&[("a", a.addr()), ("b", b.addr())]], "", ""),
        route("pool", "pool", None),
    ]))
    .await;
    for status in [400u16, 404, 422] {
        let reply = proxy
            .post(
                "/v1/chat/completions",
                chat("hi"),
                &[("x-mock-fault", &format!("status={status}"))],
            )
            .await;
        assert_eq!(reply.status.as_u16(), status);
        assert_eq!(
            reply.json()["error"]["message"],
            "injected fault",
            "the provider's own body"
        );
    }
    assert_eq!(a.request_count() + b.request_count(), 3);
}

#[tokio::test]
async fn a_provider_that_does_not_answer_in_time_gets_504() {
    let a = mock("a").await;
    a.set_fault(Some(Fault::Stall));
    let timeouts = "  policies:\n    timeouts:\n      request: 500ms\n";
    let proxy = start_proxy(&config(&[
        backend("slow", &[&[("a", a.addr())]], "", timeouts),
        route("slow", "slow", None),
    ]))
    .await;
    let started = Instant::now();
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(reply.status, 504, "{reply:?}");
    assert_eq!(reply.error_code(), "timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn health_survives_a_reload_that_leaves_the_provider_unchanged() {
    let (a, b) = (mock("a").await, mock("b").await);
    let docs = [
        backend("pool", &[&[("a", a.addr()), ("b", b.addr())]], "", ""),
        route("pool", "pool", None),
    ];
    let proxy = start_proxy(&config(&docs)).await;
    a.set_fault(Some(Fault::status(500)));
    for _ in 0..5 {
        proxy.chat(chat("hi")).await;
    }
    a.set_fault(None);
    let before = a.request_count();
    // An unrelated change: a second route.
    proxy.write_config(&config(&[
        docs[0].clone(),
        docs[1].clone(),
        route("other", "pool", Some("/other")),
    ]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..10 {
        assert_eq!(
            proxy.chat(chat("hi")).await.instance(),
            "b",
            "a is still evicted after the reload"
        );
    }
    assert_eq!(a.request_count(), before);
}

#[tokio::test]
async fn p2c_sends_most_traffic_to_the_faster_provider() {
    let (slow, fast) = (mock("slow").await, mock("fast").await);
    slow.set_fault(Some(Fault::delay(Duration::from_millis(40))));
    let proxy = start_proxy(&config(&[
        backend(
            "pool",
            &[&[("slow", slow.addr()), ("fast", fast.addr())]],
            "",
            "",
        ),
        route("pool", "pool", None),
    ]))
    .await;
    for _ in 0..100 {
        assert_eq!(proxy.chat(chat("hi")).await.status, 200);
    }
    assert!(
        fast.request_count() >= 80,
        "fast {} slow {}",
        fast.request_count(),
        slow.request_count()
    );
}
