//! One backend mixing kinds: group 1 an `anthropic` and a `gemini` provider, group 2 a
//! self-hosted `openai` one. Failover crosses kinds inside a group and between groups, both ways,
//! streaming or not, and no client ever sees an error while a provider is failing.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use agentgateway_mock_llm::{Fault, MockLlm};
use common::*;
use serde_json::json;

fn mixed_backend(claude: SocketAddr, gemini: SocketAddr, local: SocketAddr) -> String {
    let provider = |name: &str, addr: SocketAddr, kind: &str| {
        format!(
            "      - name: {name}\n        host: {}\n        port: {}\n        {kind}\n",
            addr.ip(),
            addr.port()
        )
    };
    let yaml = format!(
        "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata:\n  name: mixed\n  namespace: default\nspec:\n  policies:\n    retry: {{attempts: 2}}\n    health:\n      eviction: {{duration: 400ms, maxDuration: 400ms}}\n  ai:\n    groups:\n    - providers:\n{}{}    - providers:\n{}",
        provider(
            "claude",
            claude,
            "anthropic: {model: claude-test}\n        policies: {auth: {secretRef: {name: openai-secret}}}"
        ),
        provider(
            "gemini",
            gemini,
            "gemini: {model: gemini-test}\n        policies: {auth: {secretRef: {name: openai-secret}}}"
        ),
        provider("local", local, "openai: {model: self-hosted}"),
    );
    config(&[
        GATEWAY_KEY_SECRET.to_string(),
        yaml,
        route("mixed", "mixed", None),
    ])
}

/// Sends `n` requests, alternately plain and streamed, each asking for `word`; every one must
/// succeed with the word. Returns the instances that served them.
async fn all_succeed(proxy: &Proxy, n: usize, word: &str) -> Vec<String> {
    let mut served = Vec::new();
    for i in 0..n {
        let stream = i % 2 == 1;
        let reply = proxy
            .chat(json!({"model": "", "stream": stream,
                "messages": [{"role": "user", "content": format!("Reply with exactly: {word}")}]}))
            .await;
        reply.assert_ok();
        let content = if stream {
            assert_eq!(
                sse_data(&reply.body).last().map(String::as_str),
                Some("[DONE]")
            );
            sse_content(&reply.body)
        } else {
            reply.json()["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(content, word, "request {i}");
        served.push(reply.instance().to_string());
    }
    served
}

async fn setup() -> (Proxy, MockLlm, MockLlm, MockLlm) {
    let claude = mock("claude").await;
    let gemini = mock("gemini").await;
    let local = mock("local").await;
    let proxy = start_proxy(&mixed_backend(claude.addr(), gemini.addr(), local.addr())).await;
    (proxy, claude, gemini, local)
}

#[tokio::test]
async fn failover_crosses_kinds_within_the_group_and_to_the_next_group_and_back() {
    let (proxy, claude, gemini, local) = setup().await;

    // Healthy: group 1 serves, in either kind's API; the self-hosted group is not touched.
    let served = all_succeed(&proxy, 8, "healthy").await;
    assert!(
        served.iter().all(|s| s == "claude" || s == "gemini"),
        "{served:?}"
    );
    assert_eq!(local.request_count(), 0);

    // Anthropic overloaded: Gemini serves the group, with no client error.
    claude.set_fault(Some(Fault::status(529)));
    let served = all_succeed(&proxy, 8, "gemini serves").await;
    assert!(served.iter().all(|s| s == "gemini"), "{served:?}");

    // Gemini failing as well: the self-hosted group serves.
    gemini.set_fault(Some(Fault::status(503)));
    let served = all_succeed(&proxy, 8, "to group two").await;
    assert!(served.iter().all(|s| s == "local"), "{served:?}");

    // Back: group 1 recovers and the self-hosted model fails. Once group 1's evictions end,
    // it serves again; meanwhile every request still succeeds somewhere.
    claude.set_fault(None);
    gemini.set_fault(None);
    local.set_fault(Some(Fault::status(500)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let served = all_succeed(&proxy, 8, "back to group one").await;
    assert!(
        served.iter().all(|s| s == "claude" || s == "gemini"),
        "{served:?}"
    );
    let claude_requests = claude
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/messages")
        .count();
    let gemini_requests = gemini
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1beta/models/gemini-test:"))
        .count();
    assert_eq!(
        claude_requests,
        claude.request_count(),
        "anthropic only ever got Messages calls"
    );
    assert_eq!(
        gemini_requests,
        gemini.request_count(),
        "gemini only ever got generateContent calls"
    );
}
