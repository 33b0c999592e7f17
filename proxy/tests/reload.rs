//! Standalone config: watched files, live edits, rejected edits, reloads under load.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;

#[tokio::test]
async fn an_edit_is_applied_within_a_second() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    let edited = config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ])
    .replace("model-a", "model-edited");
    proxy.write_config(&edited);
    let took = proxy
        .wait_for(chat("hi"), |r| r.json()["model"] == "model-edited")
        .await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[tokio::test]
async fn a_broken_edit_is_rejected_and_the_last_good_config_keeps_serving() {
    let a = mock("a").await;
    let good = config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]);
    let proxy = start_proxy(&good).await;
    proxy.write_config(&good.replace(&format!("port: {}", a.addr().port()), "port: 70000"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..5 {
        assert_eq!(proxy.chat(chat("hi")).await.status, 200);
    }
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(r#"agentgateway_config_reloads_total{result="failure"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("agentgateway_config_last_reload_success 0"),
        "{metrics}"
    );
    // Fixing it is picked up again.
    proxy.write_config(&good.replace("model-a", "model-fixed"));
    proxy
        .wait_for(chat("hi"), |r| r.json()["model"] == "model-fixed")
        .await;
}

#[tokio::test]
async fn deleting_a_route_stops_serving_it_with_a_404() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    assert_eq!(proxy.chat(chat("hi")).await.status, 200);
    proxy.write_config(&backend("one", &[&[("a", a.addr())]], "", ""));
    let took = proxy.wait_for(chat("hi"), |r| r.status == 404).await;
    assert!(took < Duration::from_secs(1));
}

#[tokio::test]
async fn hot_reloads_under_load_lose_no_request() {
    let (a, b) = (mock("a").await, mock("b").await);
    let one = config(&[
        backend("pool", &[&[("a", a.addr())]], "", ""),
        route("pool", "pool", None),
    ]);
    let two = config(&[
        backend("pool", &[&[("a", a.addr()), ("b", b.addr())]], "", ""),
        route("pool", "pool", None),
    ]);
    let proxy = Arc::new(start_proxy(&one).await);
    let failures = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicU32::new(0));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (proxy, failures, done) = (proxy.clone(), failures.clone(), done.clone());
        load.push(tokio::spawn(async move {
            for _ in 0..150 {
                let reply = proxy.chat(chat("hi")).await;
                if reply.status != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for i in 0..12 {
        proxy.write_config(if i % 2 == 0 { &two } else { &one });
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(done.load(Ordering::Relaxed), 600);
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    let metrics = proxy.metrics().await;
    assert!(
        !metrics.contains(r#"config_reloads_total{result="failure"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_gateway_in_the_file_decides_the_listener_port() {
    let a = mock("a").await;
    let port = dead_addr().port();
    let gateway = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: agentgateway-proxy\n  namespace: default\nspec:\n  gatewayClassName: agentgateway\n  listeners:\n  - name: http\n    port: {port}\n    protocol: HTTP\n"
    );
    let proxy = start_proxy(&config(&[
        gateway,
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    let addresses = proxy.running().addresses().await;
    assert_eq!(addresses["default/agentgateway-proxy/http"].port(), port);
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn a_config_with_out_of_bounds_values_is_rejected_and_the_last_good_one_kept() {
    let a = mock("a").await;
    let yaml = config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]);
    let proxy = start_proxy(&yaml).await;
    let inputs =
        agentgateway_compiler::parse_manifests(&[("config.yaml".to_string(), yaml.clone())])
            .unwrap();
    let mut compiled = agentgateway_compiler::compile_standalone(&inputs).unwrap();
    // What a tampered ConfigMap could hold: `Instant + Duration` would panic on every request.
    for backend in compiled.config.backends.values_mut() {
        backend.request_timeout_ms = u64::MAX;
        for provider in backend
            .groups
            .iter_mut()
            .flat_map(|g| g.providers.iter_mut())
        {
            provider.eviction.base_ms = u64::MAX;
        }
    }
    let state = &proxy.running().context.state;
    let Err(error) = state.apply(&compiled) else {
        panic!("an out-of-bounds config was applied");
    };
    let error = error.to_string();
    assert!(error.contains("requestTimeoutMs"), "{error}");
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(reply.status, 200, "the last good config serves");
}
