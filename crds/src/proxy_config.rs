//! The compiled configuration a proxy runs from: what the operator writes into the ConfigMap
//! `<gateway>-config` and what standalone mode compiles from manifests. It never holds a secret:
//! provider keys travel separately as [`Credentials`], referenced by id.
//!
//! Everything here is resolved and defaulted: the proxy does no lookups and applies no defaults.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod delivery;
pub mod filters;
pub mod policy;
pub mod validate;
pub use filters::{HeaderConfig, HeaderModifierConfig, PathModifierConfig, RedirectConfig};
pub use policy::{CostConfig, PolicyConfig};
pub use validate::{ConfigInvalid, ConfigProblem, limits};

/// The ConfigMap data key holding the serialized [`ProxyConfig`].
pub const CONFIG_MAP_KEY: &str = "config.yaml";

/// The proxy's readiness port (`/healthz/ready`); no Gateway listener may use it.
pub const READY_PORT: u16 = 15021;
/// The proxy's metrics port (`/metrics`); no Gateway listener may use it.
pub const METRICS_PORT: u16 = 15020;

/// Provider keys by credential id (the data of the Secret `<gateway>-credentials`).
pub type Credentials = BTreeMap<String, String>;

/// The whole data-plane configuration of one proxy.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfig {
    /// The ports the proxy serves, each with its route table.
    #[serde(default)]
    pub listeners: Vec<ListenerConfig>,
    /// Every backend some route refers to, by `namespace/name`.
    #[serde(default)]
    pub backends: BTreeMap<String, BackendConfig>,
    /// The effective `AgentgatewayPolicy` of each (rule, backend) pair that has one, by an id
    /// [`WeightedBackend::policy`] refers to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, PolicyConfig>,
}

/// One listening port and its routes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListenerConfig {
    /// `namespace/gateway/listener`, or `default` when no Gateway is configured.
    pub name: String,
    /// The port; absent for the default listener, which uses the proxy's `--listen` address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The route rules that `matches` point to.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Every match of every rule, sorted by Gateway API precedence: the first that holds wins.
    #[serde(default)]
    pub matches: Vec<MatchConfig>,
    /// TLS termination: present on an HTTPS port, absent on plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTlsConfig>,
}

/// The certificates of an HTTPS port, chosen per connection by the client's SNI.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTlsConfig {
    /// One per Gateway listener on the port (1 to [`limits::MAX_CERTIFICATES_PER_PORT`]); host
    /// names are distinct and at most one has none.
    pub certificates: Vec<TlsCertificateConfig>,
}

/// A certificate and the SNI host names it is served for.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TlsCertificateConfig {
    /// An exact host name or `*.suffix` (one label deep), lowercase; absent: the certificate for
    /// clients whose SNI no other entry matches (or that send none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The credential id whose value is the PEM certificate chain (leaf first) followed by the PEM
    /// private key.
    pub credential: String,
}

/// One HTTPRoute rule.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RuleConfig {
    /// The route, `namespace/name`.
    pub route: String,
    /// The rule's index within the route.
    pub rule: u32,
    /// Weighted backends; a request picks one by weight.
    pub backends: Vec<WeightedBackend>,
    /// `RequestHeaderModifier`: applied to the request sent upstream, before the backend's own
    /// and before the proxy sets the provider's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderModifierConfig>,
    /// `ResponseHeaderModifier`: applied to every response of the rule (the proxy's own errors
    /// included), before the backend's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<HeaderModifierConfig>,
    /// `RequestRedirect`: the rule answers with a redirect; never set with `rewritePath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<RedirectConfig>,
    /// `URLRewrite`'s path: the request's path is changed after matching and before the proxy
    /// recognises its operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite_path: Option<PathModifierConfig>,
    /// `timeouts.request`, in milliseconds: the deadline of a whole request through this rule,
    /// replacing the backend's `requestTimeoutMs`; 0: none (the proxy's longest duration, 24
    /// hours, still bounds it). Absent: the backend's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// `timeouts.backendRequest`, in milliseconds: the deadline of one attempt on a provider
    /// (until its answer starts), replacing the provider's `requestTimeoutMs`; 0: none (the
    /// request's deadline only). Absent: the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request_timeout_ms: Option<u64>,
}

/// A weighted backend of a rule.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WeightedBackend {
    /// A key of [`ProxyConfig::backends`]; absent when the reference did not resolve, in which case
    /// requests sent to it get a 500, as the Gateway API requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Relative weight; 0 sends nothing.
    pub weight: u32,
    /// A key of [`ProxyConfig::policies`]: what requests to this backend through this rule must
    /// pass. Absent: nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The backendRef's `RequestHeaderModifier`, applied after the rule's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderModifierConfig>,
    /// The backendRef's `ResponseHeaderModifier`, applied after the rule's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<HeaderModifierConfig>,
}

/// One match of a rule. All conditions must hold.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MatchConfig {
    /// Index into [`ListenerConfig::rules`].
    pub rule: u32,
    /// Host names (exact, or `*.suffix`); empty matches any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// The path condition.
    pub path: PathMatchConfig,
    /// Exact header matches; names are lowercase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<NameValue>,
    /// Exact query parameter matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<NameValue>,
    /// The HTTP method, upper case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// A path condition.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(tag = "type", content = "value")]
pub enum PathMatchConfig {
    /// The path equals the value.
    Exact(String),
    /// The path starts with the value, at a `/` boundary.
    PathPrefix(String),
}

impl Default for PathMatchConfig {
    fn default() -> Self {
        Self::PathPrefix("/".to_string())
    }
}

/// A name and a value the request's must match.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub struct NameValue {
    /// The name.
    pub name: String,
    /// The value, or the pattern.
    pub value: String,
    /// How `value` matches (`Exact` when absent).
    #[serde(default, rename = "type", skip_serializing_if = "ValueMatch::is_exact")]
    pub match_type: ValueMatch,
}

/// How a header or query parameter value matches.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ValueMatch {
    /// The values are equal.
    #[default]
    Exact,
    /// The whole value matches the regular expression (Rust `regex` syntax, RE2-like: no
    /// backreferences or lookaround, so matching is linear in the value).
    RegularExpression,
}

impl ValueMatch {
    /// Whether this is the default, `Exact`.
    pub fn is_exact(&self) -> bool {
        *self == Self::Exact
    }
}

/// The most bytes a compiled match pattern may take: bounds what a config can make the proxy
/// allocate, and matching stays linear in the request's value.
pub const MAX_PATTERN_SIZE: usize = 1 << 20;

/// `pattern` compiled to match a whole value (Gateway API leaves anchoring to implementations;
/// whole-value matching is what Envoy-based gateways do and what users expect of `Exact`'s
/// sibling).
pub fn compile_pattern(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(MAX_PATTERN_SIZE)
        .dfa_size_limit(MAX_PATTERN_SIZE)
        .build()
}

/// An LLM backend, resolved.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackendConfig {
    /// `namespace/name` of the AgentgatewayBackend.
    pub name: String,
    /// Provider groups in priority order.
    pub groups: Vec<GroupConfig>,
    /// Retries of a failed attempt on another provider.
    pub retry_attempts: u32,
    /// The deadline of a whole request (all attempts, and the streamed response), in milliseconds.
    pub request_timeout_ms: u64,
    /// `spec.ai.passThrough.pathPrefixes`: a request whose operation the proxy does not recognise
    /// (anything but chat completions, completions, embeddings and models) is forwarded only when
    /// its path, as the client sent it (route prefix included, query excluded), starts with one of
    /// these at a `/` boundary; `/` allows everything. Empty (the default): such requests get
    /// `404 unsupported_operation`. Validated by
    /// [`crate::validation::is_valid_pass_through_prefix`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_through_path_prefixes: Vec<String>,
}

/// Equally preferred providers.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GroupConfig {
    /// The providers of the group.
    pub providers: Vec<ProviderConfig>,
}

/// The API a provider speaks.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProviderKind {
    /// OpenAI or any OpenAI-compatible server.
    #[default]
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic's Messages API: requests and answers are translated.
    #[serde(rename = "anthropic")]
    Anthropic,
    /// Azure OpenAI: OpenAI's bodies on a deployment's path, with `api-version` and `api-key`.
    #[serde(rename = "azureopenai")]
    AzureOpenAi,
    /// Google Gemini's generateContent API: requests and answers are translated.
    #[serde(rename = "gemini")]
    Gemini,
    /// Amazon Bedrock's Converse API, SigV4-signed: requests and answers are translated.
    #[serde(rename = "bedrock")]
    Bedrock,
    /// Google Vertex AI with OAuth2 access tokens: Gemini models through generateContent,
    /// `claude-*` models through Anthropic's rawPredict; requests and answers are translated.
    #[serde(rename = "vertexai")]
    VertexAi,
}

impl ProviderKind {
    /// The kind's name, as the config spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::AzureOpenAi => "azureopenai",
            Self::Gemini => "gemini",
            Self::Bedrock => "bedrock",
            Self::VertexAi => "vertexai",
        }
    }
}

/// The region of a `bedrock` provider.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BedrockConfig {
    /// The AWS region: the SigV4 signing region.
    pub region: String,
}

/// Where a `vertexai` provider serves its models.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct VertexConfig {
    /// The Google Cloud project: `/v1/projects/{projectId}/...`.
    pub project_id: String,
    /// The region: `.../locations/{region}/...`.
    pub region: String,
}

/// Where an Azure OpenAI provider serves a deployment.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AzureConfig {
    /// The deployment: `/openai/deployments/{deployment}/...`.
    pub deployment: String,
    /// The `api-version` query parameter.
    pub api_version: String,
}

/// One provider, resolved: endpoint, credentials reference, timeouts and eviction settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfig {
    /// Unique within the backend.
    pub name: String,
    /// The API the provider speaks.
    pub kind: ProviderKind,
    /// Replaces the request's model when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS settings; absent means plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Replaces the request path when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The deployment and API version of an `azureopenai` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureConfig>,
    /// The region of a `bedrock` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock: Option<BedrockConfig>,
    /// The project and region of a `vertexai` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertex: Option<VertexConfig>,
    /// The credential to send, by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Connect timeout (TCP and TLS), in milliseconds.
    pub connect_timeout_ms: u64,
    /// Timeout of one attempt on this provider, in milliseconds.
    pub request_timeout_ms: u64,
    /// When and how long the provider is evicted after failures.
    pub eviction: EvictionConfig,
    /// Prices of the provider's tokens; absent, its requests cost nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostConfig>,
}

/// TLS towards a provider.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TlsConfig {
    /// SNI and verified name; defaults to the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Skip server certificate verification.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
    /// PEM CA bundle to trust instead of the web roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

/// A credential reference.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuthConfig {
    /// A key of [`Credentials`]. Its value is the API key; for `bedrock`, a JSON object
    /// `{"accessKeyId", "secretAccessKey", "sessionToken"?}`; for `vertexai`, the
    /// service-account key JSON.
    pub credential: String,
}

/// Eviction settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EvictionConfig {
    /// The first eviction's duration, in milliseconds; doubles with each consecutive eviction.
    pub base_ms: u64,
    /// The longest eviction, in milliseconds.
    pub max_ms: u64,
    /// Consecutive failures that evict.
    pub consecutive_failures: u32,
}

/// Defaults the compiler applies when a policy is silent.
pub mod defaults {
    /// `policies.timeouts.connect`.
    pub const CONNECT_TIMEOUT_MS: u64 = 10_000;
    /// `policies.timeouts.request`.
    pub const REQUEST_TIMEOUT_MS: u64 = 600_000;
    /// `policies.health.eviction.duration`.
    pub const EVICTION_BASE_MS: u64 = 5_000;
    /// `policies.health.eviction.maxDuration`.
    pub const EVICTION_MAX_MS: u64 = 60_000;
    /// `policies.health.eviction.consecutiveFailures`.
    pub const CONSECUTIVE_FAILURES: u32 = 1;
    /// `policies.retry.attempts`.
    pub const RETRY_ATTEMPTS: u32 = 2;
    /// `policies.auth.secretRef.key`.
    pub const SECRET_KEY: &str = "Authorization";
    /// `policies.auth.gcp.secretRef.key`.
    pub const GCP_SERVICE_ACCOUNT_KEY: &str = "service-account.json";
    /// The data keys of the Secret `policies.auth.aws.secretRef` names; the session token is
    /// optional.
    pub const AWS_ACCESS_KEY_ID: &str = "accessKeyId";
    /// See [`AWS_ACCESS_KEY_ID`].
    pub const AWS_SECRET_ACCESS_KEY: &str = "secretAccessKey";
    /// See [`AWS_ACCESS_KEY_ID`].
    pub const AWS_SESSION_TOKEN: &str = "sessionToken";
    /// `policies.tls.caCertificateRef.key`.
    pub const CA_CERTIFICATE_KEY: &str = "ca.crt";
}

impl Default for EvictionConfig {
    fn default() -> Self {
        Self {
            base_ms: defaults::EVICTION_BASE_MS,
            max_ms: defaults::EVICTION_MAX_MS,
            consecutive_failures: defaults::CONSECUTIVE_FAILURES,
        }
    }
}
