//! Command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::governance::shared::RedisSettings;
use crate::limits::{Limits, defaults};

/// agentgateway proxy: an OpenAI-compatible LLM gateway.
#[derive(Parser, Debug, Clone)]
#[command(name = "agentgateway-proxy", version, about)]
pub struct Args {
    /// A YAML file, or a directory of `*.yaml` files, holding Kubernetes manifests
    /// (AgentgatewayBackend, HTTPRoute, Gateway, Secret). Watched: edits apply within a second.
    #[arg(
        long,
        env = "AGENTGATEWAY_CONFIG",
        required_unless_present = "kube_config_map",
        conflicts_with = "kube_config_map"
    )]
    pub config: Option<PathBuf>,

    /// Cluster mode: the compiled config from this ConfigMap (`namespace/name`, key `config.yaml`),
    /// watched through the API server (in-cluster config or KUBECONFIG).
    #[arg(long, requires = "kube_secret")]
    pub kube_config_map: Option<String>,

    /// Cluster mode: the provider keys from this Secret (`namespace/name`).
    #[arg(long, requires = "kube_config_map")]
    pub kube_secret: Option<String>,

    /// Address of the default listener (used when the config has no Gateway); the IP is also used
    /// for the ports of Gateway listeners.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Readiness endpoint (`/healthz/ready`).
    #[arg(long, default_value = "0.0.0.0:15021")]
    pub ready_addr: SocketAddr,

    /// Prometheus metrics endpoint (`/metrics`).
    #[arg(long, default_value = "0.0.0.0:15020")]
    pub metrics_addr: SocketAddr,

    /// Largest request body in bytes; larger requests get a 413.
    #[arg(long, default_value_t = defaults::BODY_LIMIT)]
    pub body_limit: usize,

    /// Request body bytes held in memory by all requests together; past it a request waits up
    /// to --buffer-wait, then gets `503 overloaded` with `Retry-After`.
    #[arg(long, default_value_t = defaults::BUFFER_BUDGET)]
    pub buffer_budget: usize,

    /// How long a request waits for the request memory budget.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub buffer_wait: Duration,

    /// A request's headers must arrive within this long (of their first byte, or of the accept).
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub header_read_timeout: Duration,

    /// An HTTPS client must finish its TLS handshake within this long of the accept.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub tls_handshake_timeout: Duration,

    /// A request body that sends nothing for this long gets a 408.
    #[arg(long, default_value = "30s", value_parser = parse_positive_duration)]
    pub body_progress_timeout: Duration,

    /// A client connection with no request in flight is closed after this long.
    #[arg(long, default_value = "60s", value_parser = parse_positive_duration)]
    pub keep_alive_idle: Duration,

    /// HTTP/2 keep-alive PING interval; a client that does not answer within it is dropped.
    #[arg(long, default_value = "30s", value_parser = parse_positive_duration)]
    pub http2_keep_alive_interval: Duration,

    /// Concurrent streams per HTTP/2 client connection.
    #[arg(long, default_value_t = defaults::HTTP2_MAX_CONCURRENT_STREAMS)]
    pub http2_max_concurrent_streams: u32,

    /// Client connections of all listeners together; past it new connections get
    /// `503 overloaded` and existing ones keep being served.
    #[arg(long, default_value_t = defaults::MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Connections to each admin endpoint (readiness, metrics); past it they are closed.
    #[arg(long, default_value_t = defaults::ADMIN_MAX_CONNECTIONS)]
    pub admin_max_connections: usize,

    /// The largest SSE event a provider may send; a larger one cuts the stream.
    #[arg(long, default_value_t = defaults::MAX_SSE_EVENT)]
    pub max_sse_event: usize,

    /// The most a stream may hold back while waiting for its first content.
    #[arg(long, default_value_t = defaults::MAX_PRE_COMMIT)]
    pub max_pre_commit: usize,

    /// A non-SSE response up to this size is buffered (a broken one is retried); larger ones
    /// are streamed.
    #[arg(long, default_value_t = defaults::MAX_RESPONSE_REPLAY)]
    pub max_response_replay: usize,

    /// A pass-through request body up to this size is held (a failed attempt is retried);
    /// larger ones are streamed to one provider.
    #[arg(long, default_value_t = defaults::MAX_REQUEST_REPLAY)]
    pub max_request_replay: usize,

    /// Distinct `model` label values per provider; further ones are counted as `other`.
    #[arg(long, default_value_t = defaults::MODEL_LABELS_PER_PROVIDER)]
    pub model_labels_per_provider: usize,

    /// Distinct `consumer` label values; further ones are counted as `other`.
    #[arg(long, default_value_t = defaults::CONSUMER_LABELS)]
    pub consumer_labels: usize,

    /// Redis for global rate limits and budgets, shared by every replica:
    /// `redis://host:port[/db]`. The password comes from `AGENTGATEWAY_REDIS_PASSWORD` (never a
    /// flag: flags show in `ps`). Without it, a config with global limits or budgets is refused.
    #[arg(long, env = "AGENTGATEWAY_REDIS_URL")]
    pub redis_url: Option<String>,

    /// The longest a request waits for Redis; then the policy's failureMode applies.
    #[arg(long, default_value = "5ms", value_parser = parse_positive_duration)]
    pub redis_timeout: Duration,

    /// After SIGTERM, how long listeners keep accepting while readiness fails.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub drain_delay: Duration,

    /// After the drain delay, how long in-flight requests and streams may take to finish.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Log format: `json` (one object per line) or `text`.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    pub log_format: String,

    /// OpenTelemetry traces: the collector's OTLP/HTTP base URL (`http://otel-collector:4318`);
    /// spans are POSTed to `{URL}/v1/traces` as protobuf. Unset: no tracing.
    #[arg(long, env = "AGENTGATEWAY_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// The `service.name` of the exported spans.
    #[arg(long, default_value = "agentgateway-proxy")]
    pub otlp_service_name: String,

    /// Worker threads (default: one per CPU).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl Args {
    /// The Redis settings: the URL from the flag, the password from the environment.
    pub fn redis(&self) -> Option<RedisSettings> {
        let url = self.redis_url.clone()?;
        let password = std::env::var("AGENTGATEWAY_REDIS_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty());
        Some(RedisSettings {
            url,
            password,
            timeout: self.redis_timeout,
        })
    }

    /// Where traces go, with `--otlp-endpoint`. The batch processor's delay and queue size are
    /// the SDK's (`OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`).
    pub fn otlp(&self) -> Option<crate::trace::OtlpOptions> {
        self.otlp_endpoint
            .as_ref()
            .map(|endpoint| crate::trace::OtlpOptions {
                endpoint: endpoint.clone(),
                service_name: self.otlp_service_name.clone(),
                schedule_delay: None,
            })
    }

    /// The limits the flags set.
    pub fn limits(&self) -> Limits {
        Limits {
            header_read_timeout: self.header_read_timeout,
            tls_handshake_timeout: self.tls_handshake_timeout,
            body_progress_timeout: self.body_progress_timeout,
            keep_alive_idle: self.keep_alive_idle,
            http2_keep_alive_interval: self.http2_keep_alive_interval,
            http2_max_concurrent_streams: self.http2_max_concurrent_streams.max(1),
            max_connections: self.max_connections.max(1),
            admin_max_connections: self.admin_max_connections.max(1),
            body_limit: self.body_limit,
            buffer_budget: self.buffer_budget,
            buffer_wait: self.buffer_wait,
            max_sse_event: self.max_sse_event.max(1),
            max_pre_commit: self.max_pre_commit.max(1),
            max_response_replay: self.max_response_replay,
            max_request_replay: self.max_request_replay,
            model_labels_per_provider: self.model_labels_per_provider,
            consumer_labels: self.consumer_labels,
            drain_delay: self.drain_delay,
            drain_timeout: self.drain_timeout,
        }
    }
}

/// The longest duration a flag takes: timers beyond it are a typo, and `Instant + Duration`
/// must not overflow.
const MAX_FLAG_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = agentgateway_crds::duration::parse_duration(text).map_err(|e| e.to_string())?;
    if duration > MAX_FLAG_DURATION {
        return Err(format!("must be at most {MAX_FLAG_DURATION:?}"));
    }
    Ok(duration)
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(duration)
}
