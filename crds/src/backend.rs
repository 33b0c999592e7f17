//! `AgentgatewayBackend` (`agentgateway.dev/v1alpha1`): an LLM backend made of one provider or of
//! priority-ordered groups of providers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An LLM backend: where the gateway sends the requests that routes give it. `spec.ai` holds either
/// one `provider` or priority-ordered `groups` of providers that the gateway balances and fails over.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "agentgateway.dev",
    version = "v1alpha1",
    kind = "AgentgatewayBackend",
    plural = "agentgatewaybackends",
    singular = "agentgatewaybackend",
    shortname = "agbe",
    category = "agentgateway",
    namespaced,
    status = "AgentgatewayBackendStatus",
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AgentgatewayBackendSpec {
    /// The LLM providers behind this backend.
    pub ai: AiBackend,
    /// Policies for every provider of this backend; a provider's own `policies` override them field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<BackendPolicies>,
}

/// Exactly one of `provider` or `groups`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AiBackend {
    /// A single provider. Mutually exclusive with `groups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// Provider groups in priority order (1 to 8). Within a group the gateway balances requests with
    /// power-of-two-choices; the next group serves only while every provider of the groups before it
    /// is unavailable. Mutually exclusive with `provider`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<ProviderGroup>>,
    /// Operations the gateway does not recognise that it may still forward to the providers, with
    /// their key. The gateway recognises chat completions, completions, embeddings and models; any
    /// other request is answered `404 unsupported_operation` unless its path is allowed here.
    /// Default: nothing is passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_through: Option<PassThrough>,
}

/// Opt-in forwarding of operations the gateway does not recognise (files, batches, fine-tuning, ...).
/// Such requests reach the provider with the gateway's key, so allow only what the routes to this
/// backend are meant to offer.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PassThrough {
    /// Path prefixes (1 to 16) of the unrecognised requests to forward: a request is forwarded only
    /// when its path starts with one of them at a `/` boundary (`/v1/files` allows `/v1/files` and
    /// `/v1/files/abc`, not `/v1/filesystem`); `/` allows everything. The path is the request path
    /// as the client sent it, including any route prefix (`/team-a/v1/files` behind a route on
    /// `/team-a`), without the query. Each prefix starts with `/`, has at most 256 bytes of RFC 3986
    /// path characters (letters, digits, `-._~!$&'()*+,;=:@/`; no `%`, `?` or `#`), no empty, `.`
    /// or `..` segments and no trailing `/` (except `/` itself). Default: nothing is passed through.
    pub path_prefixes: Vec<String>,
}

/// A set of equally preferred providers.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProviderGroup {
    /// The providers of this group (1 to 16), each with a `name` unique within the backend.
    pub providers: Vec<Provider>,
}

/// One LLM provider: exactly one kind block (`openai`, `anthropic`, `gemini`, `azureopenai`, `bedrock`,
/// `vertexai`), and optionally the endpoint that serves it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    /// The provider's name (a DNS label, unique within the backend). Required in `groups`; it labels
    /// metrics and logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Host name or IP address of a self-hosted or proxied endpoint (no scheme, port or path). Set
    /// together with `port`; without them the kind's public endpoint is used over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// TCP port of `host` (1 to 65535). Plain HTTP unless `policies.tls` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Replaces the request path sent to the provider (must start with `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// An OpenAI or OpenAI-compatible API (llama.cpp, vLLM, Ollama, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai: Option<OpenAiProvider>,
    /// Anthropic's Messages API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anthropic: Option<AnthropicProvider>,
    /// Google Gemini.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gemini: Option<GeminiProvider>,
    /// Azure OpenAI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azureopenai: Option<AzureOpenAiProvider>,
    /// Amazon Bedrock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock: Option<BedrockProvider>,
    /// Google Vertex AI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vertexai: Option<VertexAiProvider>,
    /// Policies for this provider; they override the backend's `spec.policies` field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<BackendPolicies>,
    /// What this provider's tokens cost: prices a request's usage for budgets
    /// (`AgentgatewayPolicy` `spec.budget`) and for `agentgateway_gen_ai_client_cost_usd_total`.
    /// Without it the provider's requests cost nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<ProviderCost>,
}

/// Prices in US dollars per million tokens (each at least 0). A request costs its uncached input
/// tokens at `inputPerMillion`, its cached input tokens at `cachedInputPerMillion` (each token
/// priced once) and its output tokens (reasoning included) at `outputPerMillion`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProviderCost {
    /// Input tokens.
    pub input_per_million: f64,
    /// Output tokens.
    pub output_per_million: f64,
    /// Input tokens read from the provider's prompt cache. Defaults to `inputPerMillion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_per_million: Option<f64>,
}

/// An OpenAI-compatible provider.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OpenAiProvider {
    /// The model to use. It replaces the model of every request; without it the request's model is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// An Anthropic provider.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnthropicProvider {
    /// The model to use; it replaces the model of every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A Google Gemini provider.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GeminiProvider {
    /// The model to use; it replaces the model of every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// An Azure OpenAI deployment.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AzureOpenAiProvider {
    /// The resource endpoint host, e.g. `my-resource.openai.azure.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The deployment that serves the requests (`/openai/deployments/{deploymentName}/...`): 1-64
    /// letters, digits, `-`, `_` or `.`. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_name: Option<String>,
    /// The API version, sent as `?api-version=`: `YYYY-MM-DD`, optionally with a suffix such as
    /// `-preview` (e.g. `2024-10-21`). Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The model to use; it replaces the model of every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// An Amazon Bedrock provider, served through the Converse and ConverseStream APIs of
/// `bedrock-runtime.{region}.amazonaws.com`, every request signed with SigV4 (service `bedrock`)
/// with the credentials of `policies.auth.aws`, which is required.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BedrockProvider {
    /// The AWS region, e.g. `us-east-1`: lowercase letters, digits and `-`. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The model id, inference profile id or ARN (e.g. `anthropic.claude-3-5-haiku-20241022-v1:0`);
    /// it replaces the model of every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A Google Vertex AI provider at `{region}-aiplatform.googleapis.com` (`aiplatform.googleapis.com`
/// for the region `global`). Models named `claude-*` are served through the Anthropic publisher
/// (`rawPredict` / `streamRawPredict`, Anthropic's Messages format); every other model through the
/// Google publisher (`generateContent` / `streamGenerateContent`, Gemini's format). Access tokens
/// come from the service-account key of `policies.auth.gcp`, which is required.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct VertexAiProvider {
    /// The Google Cloud project id: 6 to 30 lowercase letters, digits and `-`. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// The region, e.g. `us-central1`, or `global`. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The model to use (e.g. `gemini-2.0-flash` or `claude-3-5-haiku@20241022`); it replaces the
    /// model of every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Policies of a backend or of one provider.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackendPolicies {
    /// The credential sent to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthPolicy>,
    /// TLS towards `host`:`port` (a provider's public endpoint always uses TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsPolicy>,
    /// Connect and request timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutPolicy>,
    /// Passive health checking: when a failing provider is taken out of rotation, and for how long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthPolicy>,
    /// Retries of a failed attempt on another provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
}

/// Exactly one of `secretRef` or `key` (an API key), `aws` (for `bedrock` providers, which require
/// it) or `gcp` (for `vertexai` providers, which require it).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuthPolicy {
    /// A key in a Secret of the backend's namespace holding the API key (a leading `Bearer ` is stripped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// The API key inline. Prefer `secretRef`: an inline key is visible to everyone who can read the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// AWS credentials that sign every request with SigV4 (`bedrock` providers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsAuth>,
    /// A Google Cloud service-account key that obtains OAuth2 access tokens (`vertexai` providers
    /// only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<GcpAuth>,
}

impl AuthPolicy {
    /// The Secret this auth reads, whichever form names it.
    pub fn secret_name(&self) -> Option<&str> {
        self.secret_ref
            .as_ref()
            .map(|r| r.name.as_str())
            .or_else(|| self.aws.as_ref().map(|aws| aws.secret_ref.name.as_str()))
            .or_else(|| self.gcp.as_ref().map(|gcp| gcp.secret_ref.name.as_str()))
    }
}

/// AWS credentials from a Secret of the backend's namespace, with the data keys `accessKeyId`,
/// `secretAccessKey` and, for temporary credentials, `sessionToken`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AwsAuth {
    /// The Secret holding the credentials.
    pub secret_ref: SecretRef,
}

/// A Google Cloud service-account key (the JSON file `gcloud iam service-accounts keys create`
/// writes) in a Secret of the backend's namespace. Its `client_email` and `private_key` sign the
/// OAuth2 JWT-bearer grant sent to its `token_uri`; the access token is cached and refreshed
/// before it expires.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GcpAuth {
    /// The Secret and the data key holding the JSON key (the key defaults to
    /// `service-account.json`).
    pub secret_ref: SecretKeyRef,
}

/// A Secret in the referrer's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// The Secret's name.
    pub name: String,
    /// The Secret's namespace; only the backend's own namespace is permitted. Defaults to the
    /// backend's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A key of a Secret in the referrer's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// The Secret's namespace; only the backend's own namespace is permitted (another one makes
    /// the backend `Accepted=False` with reason `RefNotPermitted`). Defaults to the backend's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The data key holding the API key. Defaults to `Authorization` (`service-account.json` under
    /// `auth.gcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// TLS settings towards a provider.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TlsPolicy {
    /// The server name sent in SNI and verified in the certificate. Defaults to the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Accept any server certificate. For testing only: it disables server authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// A ConfigMap in the backend's namespace holding the PEM CA bundle to trust instead of the
    /// public web roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_ref: Option<ConfigMapKeyRef>,
}

/// A key of a ConfigMap in the referrer's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// The ConfigMap's name.
    pub name: String,
    /// The data key. Defaults to `ca.crt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Timeouts as durations (`"500ms"`, `"10s"`, `"2m"`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutPolicy {
    /// The whole request, streamed responses included. Defaults to `600s`; on expiry the client gets a 504.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// Establishing the connection (TCP and TLS). Defaults to `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<String>,
}

/// Passive health checking.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HealthPolicy {
    /// When and for how long a failing provider is evicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction: Option<EvictionPolicy>,
}

/// Eviction of failing providers. Connect errors, timeouts, 5xx, 529 and 429 responses are failures.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EvictionPolicy {
    /// How long the first eviction lasts; it doubles with each consecutive eviction. Defaults to `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// How many consecutive failures evict a provider. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// The longest an eviction lasts. Defaults to `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
}

/// Retries on another provider.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// How many times a failed attempt that sent nothing to the client is retried on another
    /// provider. Defaults to 2; 0 disables retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
}

/// Observed state of the backend.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AgentgatewayBackendStatus {
    /// `Accepted`: `True` when the spec is valid and every reference resolves; otherwise `False` with
    /// reason `InvalidSpec`, `SecretNotFound`, `SecretKeyNotFound`, `RefNotPermitted`,
    /// `ConfigMapNotFound`, `ConfigMapKeyNotFound` or `UnsupportedValue`, and a message naming the
    /// field or object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// The kind blocks a provider may hold, in the order the API lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKindName {
    OpenAi,
    Anthropic,
    Gemini,
    AzureOpenAi,
    Bedrock,
    VertexAi,
}

impl ProviderKindName {
    /// The field name of the kind block.
    pub fn field(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::AzureOpenAi => "azureopenai",
            Self::Bedrock => "bedrock",
            Self::VertexAi => "vertexai",
        }
    }
}

impl Provider {
    /// The kind blocks that are set (exactly one in a valid provider).
    pub fn kinds(&self) -> Vec<ProviderKindName> {
        let mut kinds = Vec::with_capacity(1);
        let set = [
            (self.openai.is_some(), ProviderKindName::OpenAi),
            (self.anthropic.is_some(), ProviderKindName::Anthropic),
            (self.gemini.is_some(), ProviderKindName::Gemini),
            (self.azureopenai.is_some(), ProviderKindName::AzureOpenAi),
            (self.bedrock.is_some(), ProviderKindName::Bedrock),
            (self.vertexai.is_some(), ProviderKindName::VertexAi),
        ];
        for (present, kind) in set {
            if present {
                kinds.push(kind);
            }
        }
        kinds
    }

    /// The model of whichever kind block is set.
    pub fn model(&self) -> Option<&str> {
        [
            self.openai.as_ref().and_then(|k| k.model.as_deref()),
            self.anthropic.as_ref().and_then(|k| k.model.as_deref()),
            self.gemini.as_ref().and_then(|k| k.model.as_deref()),
            self.azureopenai.as_ref().and_then(|k| k.model.as_deref()),
            self.bedrock.as_ref().and_then(|k| k.model.as_deref()),
            self.vertexai.as_ref().and_then(|k| k.model.as_deref()),
        ]
        .into_iter()
        .flatten()
        .next()
    }
}
