//! Every bound the proxy puts on what clients and providers may cost it: time, bytes, counts.
//! One struct, filled from flags (see `cli.rs`), read on the request path; README "Limits and
//! hardening" lists each with its default and flag.

use std::time::Duration;

/// Defaults (also the flags' defaults).
pub mod defaults {
    use std::time::Duration;

    /// A request's headers must arrive within this long of their first byte (or of the accept).
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// An HTTPS client must finish its TLS handshake within this long of the accept.
    pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// A request body that sends no byte for this long is refused (408).
    pub const BODY_PROGRESS_TIMEOUT: Duration = Duration::from_secs(30);
    /// A keep-alive connection with no request in flight is closed after this long.
    pub const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(60);
    /// HTTP/2 PING interval; a peer that does not answer within the same time is dropped.
    pub const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
    /// Concurrent streams per HTTP/2 connection.
    pub const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;
    /// Client connections of all the listeners together.
    pub const MAX_CONNECTIONS: usize = 10_000;
    /// Connections to each admin endpoint (readiness, metrics).
    pub const ADMIN_MAX_CONNECTIONS: usize = 64;
    /// The largest request body.
    pub const BODY_LIMIT: usize = 10 << 20;
    /// Request bytes held in memory by all requests together. The pod's memory limit is 256 MiB
    /// and the proxy idles at ~20 MiB: a third of the limit leaves room for response buffers,
    /// connection buffers and allocator slack.
    pub const BUFFER_BUDGET: usize = 96 << 20;
    /// How long a request waits for budget before it is told `503 overloaded`.
    pub const BUFFER_WAIT: Duration = Duration::from_secs(2);
    /// The largest single SSE event from a provider.
    pub const MAX_SSE_EVENT: usize = 4 << 20;
    /// The most a response may hold back while waiting for its first content (or, for a non-SSE
    /// response, buffered so that a broken body can still be retried).
    pub const MAX_PRE_COMMIT: usize = 4 << 20;
    /// A non-SSE response is buffered up to this size before it is sent, so that a body that
    /// breaks early can be retried on another provider; larger ones are streamed.
    pub const MAX_RESPONSE_REPLAY: usize = 256 << 10;
    /// A pass-through request body is held up to this size (so a failed attempt can be retried);
    /// beyond it, the rest is streamed to one provider as it arrives.
    pub const MAX_REQUEST_REPLAY: usize = 1 << 20;
    /// Distinct `model` label values per provider before new ones are counted as `other`.
    pub const MODEL_LABELS_PER_PROVIDER: usize = 64;
    /// Distinct `consumer` label values before new ones are counted as `other`.
    pub const CONSUMER_LABELS: usize = 256;
    /// The longest a request waits for Redis (global limits, budgets) before the policy's
    /// failure mode applies.
    pub const REDIS_TIMEOUT: Duration = Duration::from_millis(5);
    /// After SIGTERM, how long listeners keep accepting (while readiness already fails) so that
    /// endpoints are removed before connections are refused.
    pub const DRAIN_DELAY: Duration = Duration::from_secs(5);
    /// After the drain delay, how long in-flight requests and streams may take to finish.
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
}

/// The proxy's limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// See [`defaults::HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`defaults::TLS_HANDSHAKE_TIMEOUT`].
    pub tls_handshake_timeout: Duration,
    /// See [`defaults::BODY_PROGRESS_TIMEOUT`].
    pub body_progress_timeout: Duration,
    /// See [`defaults::KEEP_ALIVE_IDLE`].
    pub keep_alive_idle: Duration,
    /// See [`defaults::HTTP2_KEEP_ALIVE_INTERVAL`].
    pub http2_keep_alive_interval: Duration,
    /// See [`defaults::HTTP2_MAX_CONCURRENT_STREAMS`].
    pub http2_max_concurrent_streams: u32,
    /// See [`defaults::MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`defaults::ADMIN_MAX_CONNECTIONS`].
    pub admin_max_connections: usize,
    /// See [`defaults::BODY_LIMIT`].
    pub body_limit: usize,
    /// See [`defaults::BUFFER_BUDGET`].
    pub buffer_budget: usize,
    /// See [`defaults::BUFFER_WAIT`].
    pub buffer_wait: Duration,
    /// See [`defaults::MAX_SSE_EVENT`].
    pub max_sse_event: usize,
    /// See [`defaults::MAX_PRE_COMMIT`].
    pub max_pre_commit: usize,
    /// See [`defaults::MAX_RESPONSE_REPLAY`].
    pub max_response_replay: usize,
    /// See [`defaults::MAX_REQUEST_REPLAY`].
    pub max_request_replay: usize,
    /// See [`defaults::MODEL_LABELS_PER_PROVIDER`].
    pub model_labels_per_provider: usize,
    /// See [`defaults::CONSUMER_LABELS`].
    pub consumer_labels: usize,
    /// See [`defaults::DRAIN_DELAY`].
    pub drain_delay: Duration,
    /// See [`defaults::DRAIN_TIMEOUT`].
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        use defaults::*;
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT,
            tls_handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
            body_progress_timeout: BODY_PROGRESS_TIMEOUT,
            keep_alive_idle: KEEP_ALIVE_IDLE,
            http2_keep_alive_interval: HTTP2_KEEP_ALIVE_INTERVAL,
            http2_max_concurrent_streams: HTTP2_MAX_CONCURRENT_STREAMS,
            max_connections: MAX_CONNECTIONS,
            admin_max_connections: ADMIN_MAX_CONNECTIONS,
            body_limit: BODY_LIMIT,
            buffer_budget: BUFFER_BUDGET,
            buffer_wait: BUFFER_WAIT,
            max_sse_event: MAX_SSE_EVENT,
            max_pre_commit: MAX_PRE_COMMIT,
            max_response_replay: MAX_RESPONSE_REPLAY,
            max_request_replay: MAX_REQUEST_REPLAY,
            model_labels_per_provider: MODEL_LABELS_PER_PROVIDER,
            consumer_labels: CONSUMER_LABELS,
            drain_delay: DRAIN_DELAY,
            drain_timeout: DRAIN_TIMEOUT,
        }
    }
}

/// The bounds a listener's connections are served with.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// See [`Limits::header_read_timeout`].
    pub header_read_timeout: Duration,
    /// See [`Limits::keep_alive_idle`].
    pub keep_alive_idle: Duration,
    /// See [`Limits::http2_keep_alive_interval`].
    pub http2_keep_alive_interval: Duration,
    /// See [`Limits::http2_max_concurrent_streams`].
    pub http2_max_concurrent_streams: u32,
}

impl Limits {
    /// The per-connection part.
    pub fn connection(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: self.header_read_timeout,
            keep_alive_idle: self.keep_alive_idle,
            http2_keep_alive_interval: self.http2_keep_alive_interval,
            http2_max_concurrent_streams: self.http2_max_concurrent_streams,
        }
    }
}
