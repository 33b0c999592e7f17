//! Manifests of client governance: consumers (API-key Secrets) and AgentgatewayPolicies.

/// The label that makes a Secret a consumer of the policies below.
pub const CONSUMER_LABEL: &str = "agentgateway.dev/consumer: team-a";

/// `auth` selecting the consumers (a line under `spec:`).
pub const AUTH: &str =
    "  auth: {apiKeys: {secretSelector: {matchLabels: {agentgateway.dev/consumer: team-a}}}}\n";

/// A Secret making `name` a consumer with `key`.
pub fn consumer(name: &str, key: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: default\n  labels: {{{CONSUMER_LABEL}}}\nstringData:\n  api-key: {key}\n"
    )
}

/// An AgentgatewayPolicy `name` on the HTTPRoute `route` with `spec` (YAML lines under `spec:`).
pub fn policy_on_route(name: &str, route: &str, spec: &str) -> String {
    format!(
        "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayPolicy\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {route}}}]\n{spec}"
    )
}

/// `Authorization: Bearer <key>`'s value.
pub fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// A header of a reply, which must be there.
pub fn header<'a>(reply: &'a super::Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} in {:?}", reply.headers))
}

/// The tokens a JSON request reserves: its body at 4 bytes a token, plus `max_tokens`.
pub fn reserved(body: &serde_json::Value, max_tokens: u64) -> u64 {
    (body.to_string().len() as u64).div_ceil(4) + max_tokens
}

/// The input + output tokens a streamed chat completion (asked with `include_usage`) reports.
pub fn streamed_usage(body: &[u8]) -> u64 {
    let usage = super::sse_chunks(body)
        .into_iter()
        .find_map(|c| c.get("usage").filter(|u| !u.is_null()).cloned())
        .expect("usage in the stream");
    usage["prompt_tokens"].as_u64().expect("prompt_tokens")
        + usage["completion_tokens"]
            .as_u64()
            .expect("completion_tokens")
}

/// Posts the chat request `body` until it is admitted (refused requests count nothing, so this
/// waits for an earlier request's correction to land without adding to the counters), for up
/// to 5 s; the admitted reply.
pub async fn until_admitted(proxy: &super::Proxy, body: &serde_json::Value) -> super::Reply {
    let started = std::time::Instant::now();
    loop {
        let reply = proxy.post("/v1/chat/completions", body.clone(), &[]).await;
        if reply.status == 200 {
            return reply;
        }
        assert_eq!(reply.status, 429, "{reply:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{reply:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
