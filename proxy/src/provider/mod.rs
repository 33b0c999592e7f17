//! One provider at run time: its resolved config, its pooled client, its credential header, and
//! what has been learned about it (health, latency, load). The object outlives config reloads
//! that leave the provider unchanged, so what was learned is kept.

pub mod balancer;
pub mod google_token;
pub mod health;
pub mod sigv4;

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use agentgateway_crds::proxy_config::{ProviderConfig, ProviderKind};
use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue};

use self::balancer::Candidate;
use self::google_token::{GoogleTokens, TokenError};
use self::health::{Failure, Health};
use self::sigv4::{AwsSigner, SigningError};
use crate::metrics::{Label, Metrics, ProviderLabels};
use crate::upstream::{ClientBuildError, UpstreamClient, build_client};

/// A provider of a backend, shared by every request that uses it.
pub struct ProviderRuntime {
    /// `namespace/name` of the backend.
    pub backend: std::sync::Arc<str>,
    /// The provider's name.
    pub name: std::sync::Arc<str>,
    /// The resolved config it was built from.
    pub config: ProviderConfig,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// `host:port`.
    pub authority: Authority,
    /// The model that replaces the request's, shared with metric labels.
    pub model: Option<std::sync::Arc<str>>,
    /// The value of the key's header ([`auth_header_name`]: `Bearer <key>`, or the key), marked
    /// sensitive so it is never logged.
    pub auth_header: Option<HeaderValue>,
    /// How a `bedrock` or `vertexai` provider authenticates each request.
    pub cloud_auth: Option<CloudAuth>,
    /// The credential `cloud_auth` was built from, to tell whether a reload changed it.
    cloud_credential: Option<String>,
    /// Pooled connections to the provider.
    pub client: UpstreamClient,
    health: Mutex<Health>,
    in_flight: AtomicU32,
    /// The `model` label values seen so far, at most `model_label_cap`.
    model_labels: Mutex<HashSet<Label>>,
    model_label_cap: usize,
}

/// The `model` label of requests past a provider's distinct-value bound.
pub const OTHER_MODEL: &str = "other";

/// Why a provider could not be set up from config.
#[derive(Debug, thiserror::Error)]
pub enum ProviderBuildError {
    /// Host and port do not form a valid authority.
    #[error(
        "failed to use {host}:{port} as the address of provider {provider} of backend {backend}"
    )]
    ParseAuthority {
        backend: String,
        provider: String,
        host: String,
        port: u16,
    },
    /// The key holds characters an HTTP header cannot carry.
    #[error(
        "failed to use the key of provider {provider} of backend {backend}: it is not a valid header value"
    )]
    InvalidKey { backend: String, provider: String },
    /// A `bedrock` provider's AWS credential is unusable.
    #[error(
        "failed to use the AWS credential of provider {provider} of backend {backend}: {source}"
    )]
    AwsCredential {
        backend: String,
        provider: String,
        source: SigningError,
    },
    /// A `vertexai` provider's service-account key is unusable.
    #[error(
        "failed to use the service-account key of provider {provider} of backend {backend}: {source}"
    )]
    ServiceAccount {
        backend: String,
        provider: String,
        source: TokenError,
    },
    /// A `bedrock` or `vertexai` provider has no credential.
    #[error(
        "provider {provider} of backend {backend} has no credential: kinds bedrock and vertexai need one"
    )]
    MissingCloudCredential { backend: String, provider: String },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] ClientBuildError),
}

/// The per-request authentication of the clouds' APIs, which a static header cannot do.
#[derive(Debug)]
pub enum CloudAuth {
    /// Bedrock: every request signed with SigV4.
    Aws(AwsSigner),
    /// Vertex AI: an OAuth2 access token from a service-account key.
    Google(GoogleTokens),
}

impl CloudAuth {
    fn new(
        config: &ProviderConfig,
        key: Option<&str>,
        backend: &str,
    ) -> Result<Option<Self>, ProviderBuildError> {
        let missing = || ProviderBuildError::MissingCloudCredential {
            backend: backend.to_string(),
            provider: config.name.clone(),
        };
        match config.kind {
            ProviderKind::Bedrock => {
                let region = config.bedrock.as_ref().map_or("", |b| b.region.as_str());
                let signer =
                    AwsSigner::new(key.ok_or_else(missing)?, region).map_err(|source| {
                        ProviderBuildError::AwsCredential {
                            backend: backend.to_string(),
                            provider: config.name.clone(),
                            source,
                        }
                    })?;
                Ok(Some(Self::Aws(signer)))
            }
            ProviderKind::VertexAi => {
                let tokens = GoogleTokens::new(key.ok_or_else(missing)?).map_err(|source| {
                    ProviderBuildError::ServiceAccount {
                        backend: backend.to_string(),
                        provider: config.name.clone(),
                        source,
                    }
                })?;
                Ok(Some(Self::Google(tokens)))
            }
            _ => Ok(None),
        }
    }
}

impl ProviderRuntime {
    /// Builds a provider; `key` is its API key, if it has one; `model_label_cap` bounds the
    /// distinct `model` label values its metrics carry.
    pub fn new(
        backend: std::sync::Arc<str>,
        config: ProviderConfig,
        key: Option<&str>,
        model_label_cap: usize,
    ) -> Result<Self, ProviderBuildError> {
        let authority = authority(&config.host, config.port).ok_or_else(|| {
            ProviderBuildError::ParseAuthority {
                backend: backend.to_string(),
                provider: config.name.clone(),
                host: config.host.clone(),
                port: config.port,
            }
        })?;
        let cloud_auth = CloudAuth::new(&config, key, &backend)?;
        let auth_header = key
            .filter(|_| cloud_auth.is_none())
            .map(|key| auth_value(config.kind, key))
            .transpose()
            .map_err(|_| ProviderBuildError::InvalidKey {
                backend: backend.to_string(),
                provider: config.name.clone(),
            })?;
        let client = build_client(&config)?;
        Ok(Self {
            name: config.name.as_str().into(),
            model: config.model.as_deref().map(Into::into),
            backend,
            scheme: if config.tls.is_some() {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
            authority,
            auth_header,
            cloud_credential: cloud_auth.as_ref().and(key).map(str::to_string),
            cloud_auth,
            client,
            config,
            health: Mutex::new(Health::default()),
            in_flight: AtomicU32::new(0),
            model_labels: Mutex::new(HashSet::new()),
            model_label_cap,
        })
    }

    /// The `model` label for a request served with `model`: the value itself while the provider
    /// has seen fewer than its bound of distinct values, then `other` for new ones, so clients
    /// and providers cannot grow the metrics without bound.
    pub fn model_label(&self, model: Option<&str>) -> Label {
        let Some(model) = model else {
            return Label::default();
        };
        if let Some(configured) = self.model.as_ref().filter(|m| &***m == model) {
            return Label(configured.clone());
        }
        let mut seen = self
            .model_labels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = seen.get(model) {
            return known.clone();
        }
        if seen.len() >= self.model_label_cap {
            return Label::from(OTHER_MODEL);
        }
        let label = Label::from(model);
        seen.insert(label.clone());
        label
    }

    /// Whether this provider is what `config` with `key` would build, so it can be kept.
    pub fn is_same(&self, config: &ProviderConfig, key: Option<&str>) -> bool {
        if self.config != *config {
            return false;
        }
        if self.cloud_auth.is_some() {
            return self.cloud_credential.as_deref() == key;
        }
        match (
            &self.auth_header,
            key.map(|key| auth_value(config.kind, key)),
        ) {
            (None, None) => true,
            (Some(have), Some(Ok(want))) => *have == want,
            _ => false,
        }
    }

    /// Whether requests carry the gateway's credential (a key, a signature or a token), so the
    /// client's own credential headers are not forwarded.
    pub fn has_gateway_credential(&self) -> bool {
        self.auth_header.is_some() || self.cloud_auth.is_some()
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        // A panic while holding this lock cannot leave Health half-updated in a harmful way.
        self.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The balancer's view of this provider.
    pub fn candidate(&self, now: Instant, tried: bool) -> Candidate {
        let health = self.health();
        Candidate {
            evicted_until: health.eviction_ends(now),
            score: health.score(self.in_flight.load(Ordering::Relaxed), now),
            tried,
        }
    }

    /// Whether the provider is in rotation now.
    pub fn is_healthy(&self, now: Instant) -> bool {
        !self.health().is_evicted(now)
    }

    /// When the current eviction ends, if evicted.
    pub fn eviction_ends(&self, now: Instant) -> Option<Instant> {
        self.health().eviction_ends(now)
    }

    /// Records a successful attempt with its latency.
    pub fn record_success(&self, latency: Duration) {
        self.health().record_success(latency, Instant::now());
    }

    /// Records a failed attempt; returns the eviction's duration when it evicted the provider.
    pub fn record_failure(&self, failure: Failure) -> Option<Duration> {
        self.health()
            .record_failure(failure, &self.config.eviction, Instant::now())
    }

    /// Records a failed attempt, counts and logs the eviction it causes.
    pub fn report_failure(&self, failure: Failure, metrics: &Metrics, detail: &str) {
        let Some(duration) = self.record_failure(failure) else {
            tracing::info!(backend = %self.backend, provider = %self.name, failure = failure.as_str(), detail, "attempt failed");
            return;
        };
        let labels = ProviderLabels {
            backend: Label(self.backend.clone()),
            provider: Label(self.name.clone()),
        };
        metrics.evictions.get_or_create(&labels).inc();
        tracing::warn!(backend = %self.backend, provider = %self.name, failure = failure.as_str(),
            eviction_ms = duration.as_millis() as u64, detail, "provider evicted");
    }

    /// Counts a request in flight until the guard drops.
    pub fn start_request(self: &std::sync::Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// A request in flight on a provider.
pub struct InFlight(std::sync::Arc<ProviderRuntime>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn authority(host: &str, port: u16) -> Option<Authority> {
    let text = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    text.parse().ok()
}

/// The value of the header that carries `key` to a provider of `kind` (see [`auth_header_name`]).
fn auth_value(
    kind: ProviderKind,
    key: &str,
) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut value = match kind {
        ProviderKind::OpenAi => HeaderValue::try_from(format!("Bearer {key}"))?,
        ProviderKind::Anthropic
        | ProviderKind::AzureOpenAi
        | ProviderKind::Gemini
        | ProviderKind::Bedrock
        | ProviderKind::VertexAi => HeaderValue::try_from(key)?,
    };
    value.set_sensitive(true);
    Ok(value)
}

/// The header that carries the key to a provider of `kind`: `Authorization: Bearer` for OpenAI,
/// `x-api-key` for Anthropic, `api-key` for Azure OpenAI, `x-goog-api-key` for Gemini.
pub fn auth_header_name(kind: ProviderKind) -> HeaderName {
    match kind {
        // Vertex AI's access token is a bearer token; Bedrock's signature is `authorization` too.
        ProviderKind::OpenAi | ProviderKind::Bedrock | ProviderKind::VertexAi => {
            http::header::AUTHORIZATION
        }
        ProviderKind::Anthropic => HeaderName::from_static("x-api-key"),
        ProviderKind::AzureOpenAi => HeaderName::from_static("api-key"),
        ProviderKind::Gemini => HeaderName::from_static("x-goog-api-key"),
    }
}
