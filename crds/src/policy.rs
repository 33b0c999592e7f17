//! `AgentgatewayPolicy` (`agentgateway.dev/v1alpha1`): who may call, how much, and for how much
//! money, attached to a Gateway, an HTTPRoute or an AgentgatewayBackend of its namespace (Gateway
//! API policy attachment). The more specific target wins, field by field: a backend's policy over a
//! route's over a Gateway's.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Client authentication, rate limits and spending budgets for the requests that reach its
/// targets.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "agentgateway.dev",
    version = "v1alpha1",
    kind = "AgentgatewayPolicy",
    plural = "agentgatewaypolicies",
    singular = "agentgatewaypolicy",
    shortname = "agpol",
    category = "agentgateway",
    namespaced,
    status = "AgentgatewayPolicyStatus",
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AgentgatewayPolicySpec {
    /// The objects the policy applies to (1 to 16), in the policy's namespace: a `Gateway` or an
    /// `HTTPRoute` (group `gateway.networking.k8s.io`) or an `AgentgatewayBackend` (group
    /// `agentgateway.dev`). A request gets, for each field (`auth`, `rateLimit.local`,
    /// `rateLimit.global`, `budget`), the value of the most specific policy that sets it: its
    /// backend's, else its route's, else its Gateway's. Two policies on the same target that set
    /// the same field conflict: the older one (then the first by name) wins, the other is
    /// `Accepted=False` with reason `Conflicted` for that target.
    pub target_refs: Vec<PolicyTargetRef>,
    /// Who may call: requests without a known key are refused with `401 invalid_api_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ClientAuth>,
    /// Requests and tokens per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitPolicy>,
    /// Money per period, priced with the providers' `cost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetPolicy>,
    /// What the Redis-backed checks (`rateLimit.global`, `budget`) do when Redis cannot answer
    /// within the proxy's Redis timeout (5 ms by default): `Open` (the default) admits the request,
    /// `Closed` refuses it with `503 rate_limit_unavailable`. Either way a metric counts it and a
    /// log line says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<FailureMode>,
}

/// An object of the policy's namespace.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetRef {
    /// `gateway.networking.k8s.io` (Gateway, HTTPRoute) or `agentgateway.dev`
    /// (AgentgatewayBackend).
    pub group: String,
    /// `Gateway`, `HTTPRoute` or `AgentgatewayBackend`.
    pub kind: String,
    /// The object's name.
    pub name: String,
}

/// How clients prove who they are.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClientAuth {
    /// API keys: each consumer is one Secret.
    pub api_keys: ApiKeys,
}

/// Consumers from Secrets of the policy's namespace selected by label: one Secret is one
/// consumer, its name the consumer id (in metrics, logs and rate-limit keys), the value of its
/// data key `key` the API key. Clients send the key as `Authorization: Bearer <key>` or
/// `x-api-key: <key>`; it is checked at the gateway and never sent to a provider. The proxy holds
/// only SHA-256 hashes of the keys; a changed or deleted Secret is live within a second.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeys {
    /// The Secrets holding the consumers' keys (`matchLabels` and `matchExpressions`; an empty
    /// selector is refused, it would make every Secret a key).
    pub secret_selector: LabelSelector,
    /// The data key holding the API key in each Secret. Defaults to `api-key`. A selected Secret
    /// without it is no consumer, and the policy's message names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Rate limits. Every limit that applies must admit a request; the response carries OpenAI's
/// `x-ratelimit-*` headers for the tightest requests limit and the tightest tokens limit.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitPolicy {
    /// Limits counted by each proxy replica on its own (up to 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<Vec<RateLimit>>,
    /// Limits counted in Redis and shared by every replica of every Gateway (up to 16); needs the
    /// operator's Redis (`redis.*` chart values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<Vec<RateLimit>>,
}

/// One limit: exactly one of `requests` or `tokens` per `per`, counted separately for each value
/// of `key`. Windows are fixed and aligned to the clock (a `Minute` window starts at second 0).
/// Tokens are reserved when a request is admitted (its `max_tokens`, `max_completion_tokens` or
/// `max_output_tokens`, else 1024, plus its input estimated at a token per 4 bytes of body) and
/// corrected to the provider's reported input and output tokens when the response ends.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Requests per period (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Tokens (input and output) per period (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// The window.
    pub per: RatePeriod,
    /// What is counted apart: each `consumer` (requests without one share a counter), each
    /// `route` or each `backend`.
    pub key: LimitKey,
}

/// A rate limit's window.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RatePeriod {
    /// One second.
    Second,
    /// One minute.
    #[default]
    Minute,
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl RatePeriod {
    /// The window's length in milliseconds.
    pub fn millis(self) -> u64 {
        match self {
            Self::Second => 1_000,
            Self::Minute => 60_000,
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }
}

/// What a limit counts apart.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum LimitKey {
    /// Each consumer (`auth.apiKeys`).
    #[default]
    Consumer,
    /// Each HTTPRoute.
    Route,
    /// Each AgentgatewayBackend.
    Backend,
}

/// What a shared limit does when Redis does not answer in time.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FailureMode {
    /// Admit the request (counted in `agentgateway_rate_limit_decisions_total{result="failed_open"}`).
    #[default]
    Open,
    /// Refuse it with `503 rate_limit_unavailable`.
    Closed,
}

/// Money per period: once the spend of a key reaches `usd`, its requests are refused with `429
/// insufficient_quota` until the period ends. Spend is priced from the providers' `cost` when a
/// response ends, so requests already running when the budget is reached still finish. Budgets
/// live in Redis, shared by every replica.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BudgetPolicy {
    /// US dollars per period (more than 0).
    pub usd: f64,
    /// The period.
    pub per: BudgetPeriod,
    /// What is budgeted apart: each `consumer` or each `route`.
    pub key: BudgetKey,
}

/// A budget's period, in UTC.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BudgetPeriod {
    /// A calendar day.
    Day,
    /// A calendar month.
    #[default]
    Month,
}

/// What a budget counts apart.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum BudgetKey {
    /// Each consumer.
    #[default]
    Consumer,
    /// Each HTTPRoute.
    Route,
}

/// Observed state of the policy.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AgentgatewayPolicyStatus {
    /// `Accepted`: `True` when the policy applies to every target; otherwise `False` with the
    /// reason of the first target it does not apply to (`InvalidSpec`, `TargetNotFound`,
    /// `Conflicted`, `RedisNotConfigured`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// One entry per target, with its own `Accepted` condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ancestors: Vec<PolicyAncestorStatus>,
}

/// The policy's state on one target.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    /// The target.
    pub ancestor_ref: PolicyTargetRef,
    /// `agentgateway.dev/agentgateway`.
    pub controller_name: String,
    /// `Accepted`, with a reason and a message naming the field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::conditions::conditions_schema")]
    pub conditions: Vec<Condition>,
}
