//! Test harness: the real proxy in-process, configured from manifests in a temp dir, in front of
//! mock LLM servers on loopback.
#![allow(dead_code)]

pub mod policy;
pub mod raw;
pub mod redis;

use std::net::SocketAddr;
use std::time::Duration;

use agentgateway_mock_llm::{MockLlm, MockLlmConfig};
use agentgateway_proxy::access_log::AccessLog;
use agentgateway_proxy::governance::shared::RedisSettings;
use agentgateway_proxy::limits::Limits;
use agentgateway_proxy::source::file::FileSource;
use agentgateway_proxy::trace::OtlpOptions;
use agentgateway_proxy::{ProxyOptions, RunningProxy, start};
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub struct Proxy {
    pub running: Option<RunningProxy>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub client: HttpClient,
}

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Starts the proxy on manifests `yaml` (no Gateway: the default listener on 127.0.0.1:0).
pub async fn start_proxy(yaml: &str) -> Proxy {
    start_proxy_with(yaml, Limits::default()).await
}

/// Starts the proxy on manifests `yaml` with `limits`.
pub async fn start_proxy_with(yaml: &str, limits: Limits) -> Proxy {
    start_proxy_full(yaml, limits, AccessLog::default()).await
}

/// Starts the proxy on manifests `yaml`, writing access lines to `access_log`.
pub async fn start_proxy_logged(yaml: &str, access_log: AccessLog) -> Proxy {
    start_proxy_full(yaml, Limits::default(), access_log).await
}

/// Starts the proxy on manifests `yaml`, counting global limits and budgets in `redis`.
pub async fn start_proxy_redis(yaml: &str, redis: RedisSettings) -> Proxy {
    start_proxy_options(
        yaml,
        Limits::default(),
        AccessLog::default(),
        Some(redis),
        None,
    )
    .await
}

async fn start_proxy_full(yaml: &str, limits: Limits, access_log: AccessLog) -> Proxy {
    start_proxy_options(yaml, limits, access_log, None, None).await
}

/// Starts the proxy on manifests `yaml`, exporting traces as `otlp` says.
pub async fn start_proxy_traced(yaml: &str, otlp: OtlpOptions) -> Proxy {
    start_proxy_options(
        yaml,
        Limits::default(),
        AccessLog::default(),
        None,
        Some(otlp),
    )
    .await
}

async fn start_proxy_options(
    yaml: &str,
    limits: Limits,
    access_log: AccessLog,
    redis: Option<RedisSettings>,
    otlp: Option<OtlpOptions>,
) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), yaml).unwrap();
    let options = ProxyOptions {
        redis,
        listen: "127.0.0.1:0".parse().unwrap(),
        ready_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        limits,
        access_log,
        otlp,
    };
    let source = FileSource::new(dir.path()).with_interval(Duration::from_millis(50));
    let running = start(options, source).await.expect("proxy starts");
    let addresses = running.addresses().await;
    let addr = addresses
        .get("default")
        .copied()
        .unwrap_or_else(|| *addresses.values().next().unwrap());
    Proxy {
        running: Some(running),
        addr,
        dir,
        client: client(),
    }
}

impl Proxy {
    pub fn running(&self) -> &RunningProxy {
        self.running.as_ref().unwrap()
    }

    /// Replaces the manifests (atomically, as editors save).
    pub fn write_config(&self, yaml: &str) {
        let tmp = self.dir.path().join(".config.yaml.tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(tmp, self.dir.path().join("config.yaml")).unwrap();
    }

    pub async fn chat(&self, body: Value) -> Reply {
        self.post("/v1/chat/completions", body, &[]).await
    }

    pub async fn embeddings(&self, body: Value) -> Reply {
        self.post("/v1/embeddings", body, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
        self.send("POST", path, Bytes::from(body.to_string()), headers)
            .await
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Reply {
        let response = self.request(method, path, body, headers).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> http::Response<Incoming> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path))
            .header("content-type", "application/json");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        self.client
            .request(builder.body(Full::new(body)).unwrap())
            .await
            .unwrap()
    }

    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.running().metrics_addr);
        let response = self.client.get(url.parse().unwrap()).await.unwrap();
        String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap()
    }

    /// Waits until `check` holds for a chat reply, polling; returns how long it took.
    pub async fn wait_for(&self, body: Value, check: impl Fn(&Reply) -> bool) -> Duration {
        let start = std::time::Instant::now();
        loop {
            let reply = self.chat(body.clone()).await;
            if check(&reply) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "condition not reached: last reply {reply:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Fails the test, showing the body, unless the status is 200.
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.status, 200, "{}", String::from_utf8_lossy(&self.body));
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn instance(&self) -> &str {
        self.headers
            .get("x-mock-llm-instance")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts an OpenAI-shaped error body and returns its code.
    pub fn error_code(&self) -> String {
        let json = self.json();
        let error = &json["error"];
        assert!(error["message"].is_string(), "no error.message in {json}");
        assert!(error["type"].is_string(), "no error.type in {json}");
        error["code"].as_str().unwrap_or_default().to_string()
    }
}

pub async fn mock(name: &str) -> MockLlm {
    MockLlm::start(MockLlmConfig {
        name: name.into(),
        model: format!("{name}-model"),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// A chat request.
pub fn chat(content: &str) -> Value {
    serde_json::json!({"model": "", "messages": [{"role": "user", "content": content}]})
}

/// One `AgentgatewayBackend` + `HTTPRoute` (matching everything) in namespace `default`.
/// `groups` are lists of `(provider name, address)`; `extra` is YAML appended under each provider
/// (indented already, e.g. `"        policies: ..."`), `backend_policies` under `spec`.
pub fn backend(
    name: &str,
    groups: &[&[(&str, SocketAddr)]],
    provider_extra: &str,
    backend_policies: &str,
) -> String {
    let mut yaml = format!(
        "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n"
    );
    if !backend_policies.is_empty() {
        yaml.push_str(backend_policies);
        if !backend_policies.ends_with('\n') {
            yaml.push('\n');
        }
    }
    yaml.push_str("  ai:\n    groups:\n");
    for group in groups {
        yaml.push_str("    - providers:\n");
        for (provider, addr) in group.iter() {
            yaml.push_str(&format!(
                "      - name: {provider}\n        host: {}\n        port: {}\n        openai:\n          model: model-{provider}\n",
                addr.ip(),
                addr.port()
            ));
            if !provider_extra.is_empty() {
                yaml.push_str(provider_extra);
                if !provider_extra.ends_with('\n') {
                    yaml.push('\n');
                }
            }
        }
    }
    yaml
}

/// An `HTTPRoute` in `default` sending everything (or `path_prefix`) to backend `name`.
pub fn route(name: &str, backend: &str, path_prefix: Option<&str>) -> String {
    let matches = path_prefix
        .map(|p| {
            format!("    matches:\n    - path:\n        type: PathPrefix\n        value: {p}\n")
        })
        .unwrap_or_default();
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  parentRefs:\n  - name: agentgateway-proxy\n  rules:\n  - backendRefs:\n    - name: {backend}\n      group: agentgateway.dev\n      kind: AgentgatewayBackend\n{matches}"
    )
}

/// Backend + route, joined as a multi-document file.
pub fn config(docs: &[String]) -> String {
    docs.join("\n---\n")
}

/// A closed port: connecting to it is refused.
pub fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// A Secret holding the gateway's key for providers (`sk-test-123`).
pub const GATEWAY_KEY_SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: openai-secret\n  namespace: default\nstringData:\n  Authorization: Bearer sk-test-123\n";
/// Provider YAML (for `backend`'s `provider_extra`) that sends the gateway's key.
pub const GATEWAY_KEY_AUTH: &str = "        policies:\n          auth:\n            secretRef:\n              name: openai-secret\n";

/// Backend `keyed` with one provider at `addr` that sends the gateway's key, and its route.
pub fn keyed_backend(addr: SocketAddr) -> String {
    config(&[
        GATEWAY_KEY_SECRET.to_string(),
        backend("keyed", &[&[("a", addr)]], GATEWAY_KEY_AUTH, ""),
        route("keyed", "keyed", None),
    ])
}

/// The `data:` payloads of an SSE body, `[DONE]` included.
pub fn sse_data(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.strip_prefix("data: ").map(str::to_string))
        .collect()
}

/// The text of a streamed chat completion: its chunks' `content` deltas, joined.
pub fn sse_content(body: &[u8]) -> String {
    sse_chunks(body)
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

/// The JSON chunks of an SSE body (`[DONE]` left out).
pub fn sse_chunks(body: &[u8]) -> Vec<Value> {
    sse_data(body)
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// The vectors of an OpenAI embeddings answer, once its official shape is checked: exactly
/// `object: "list"`, `data`, `model` and `usage`; `inputs` items, each exactly `object:
/// "embedding"`, its `index` (in order) and a float `embedding`; `usage` exactly
/// `prompt_tokens` = `total_tokens`.
pub fn embeddings_of(body: &Value, inputs: usize) -> Vec<Vec<f64>> {
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(body), ["data", "model", "object", "usage"], "{body}");
    assert_eq!(body["object"], "list");
    assert!(body["model"].is_string(), "{body}");
    assert_eq!(
        keys(&body["usage"]),
        ["prompt_tokens", "total_tokens"],
        "{body}"
    );
    assert_eq!(
        body["usage"]["prompt_tokens"],
        body["usage"]["total_tokens"]
    );
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), inputs, "{body}");
    data.iter()
        .enumerate()
        .map(|(i, item)| {
            assert_eq!(keys(item), ["embedding", "index", "object"], "{item}");
            assert_eq!(item["object"], "embedding");
            assert_eq!(item["index"], i);
            item["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

/// The input tokens the metrics counted on backend `default/{backend}`.
pub fn input_tokens(metrics: &str, backend: &str) -> f64 {
    let label = format!("backend=\"default/{backend}\"");
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("agentgateway_gen_ai_client_token_usage_sum{gen_ai_token_type=\"input\"")
                && l.contains(&label)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
