//! A request's effective `AgentgatewayPolicy`, resolved by the compiler for each (route rule,
//! backend) pair: the most specific policy's value of each field, with the ids that name its
//! counters. Client keys are not here: only the id of the credential that lists their hashes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::policy::{BudgetKey, BudgetPeriod, FailureMode, LimitKey, RatePeriod};

/// What a request to one backend of one rule must pass.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub struct PolicyConfig {
    /// API-key authentication, when required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<ApiKeysConfig>,
    /// Limits counted by this proxy alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local: Vec<LimitConfig>,
    /// Limits counted in Redis, shared by every replica.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub global: Vec<LimitConfig>,
    /// What `global` does when Redis does not answer in time (the failure mode of the policy
    /// `global` came from).
    #[serde(default, skip_serializing_if = "is_open")]
    pub failure_mode: FailureMode,
    /// A spending budget, counted in Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetConfig>,
}

fn is_open(mode: &FailureMode) -> bool {
    *mode == FailureMode::Open
}

impl PolicyConfig {
    /// Whether any check needs Redis.
    pub fn needs_redis(&self) -> bool {
        !self.global.is_empty() || self.budget.is_some()
    }
}

/// Where the consumers' key hashes are.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeysConfig {
    /// A key of [`super::Credentials`] whose value is a JSON array of [`ConsumerKey`]s.
    pub credential: String,
}

/// One consumer's key as the proxy holds it (an element of the credential's JSON array).
#[derive(Serialize, Deserialize, JsonSchema, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerKey {
    /// The consumer id (the Secret's name).
    pub consumer: String,
    /// The SHA-256 of the API key, lower-case hex.
    pub sha256: String,
}

// Not derived: a key hash is kept out of logs like a key.
impl std::fmt::Debug for ConsumerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerKey")
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

/// What a limit counts.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LimitUnit {
    /// Requests.
    #[default]
    Requests,
    /// Input and output tokens.
    Tokens,
}

/// One rate limit.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub struct LimitConfig {
    /// Names the limit's counters, the same in every replica and across config reloads:
    /// `<namespace>/<policy>/<local|global>/<index>`.
    pub id: String,
    /// What is counted.
    pub unit: LimitUnit,
    /// How many per window (at least 1).
    pub limit: u64,
    /// The window.
    pub per: RatePeriod,
    /// What is counted apart.
    pub key: LimitKey,
}

/// A spending budget.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub struct BudgetConfig {
    /// Names the budget's counters: `<namespace>/<policy>/budget`.
    pub id: String,
    /// The budget in millionths of a US dollar (at least 1).
    pub micro_usd: u64,
    /// The period.
    pub per: BudgetPeriod,
    /// What is budgeted apart.
    pub key: BudgetKey,
    /// What the budget does when Redis does not answer in time.
    #[serde(default, skip_serializing_if = "is_open")]
    pub failure_mode: FailureMode,
}

/// A provider's prices in US dollars per million tokens.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CostConfig {
    /// Uncached input tokens.
    pub input_per_million: f64,
    /// Output tokens.
    pub output_per_million: f64,
    /// Cached input tokens.
    pub cached_input_per_million: f64,
}

impl CostConfig {
    /// The price of a request's tokens, in millionths of a US dollar (rounded up, so that
    /// many small requests cannot spend for free).
    pub fn micro_usd(&self, input: u64, cached_input: u64, output: u64) -> u64 {
        let cached = cached_input.min(input);
        // Per million tokens, in micro-USD per token: the prices are the micro-USD per token.
        let micro = (input - cached) as f64 * self.input_per_million
            + cached as f64 * self.cached_input_per_million
            + output as f64 * self.output_per_million;
        if micro.is_finite() && micro > 0.0 {
            micro.ceil() as u64
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_tokens_are_priced_once_at_their_own_price() {
        let cost = CostConfig {
            input_per_million: 2.5,
            output_per_million: 10.0,
            cached_input_per_million: 1.25,
        };
        // 1000 input of which 400 cached, 100 output: 600*2.5 + 400*1.25 + 100*10 micro-USD.
        assert_eq!(cost.micro_usd(1000, 400, 100), 1500 + 500 + 1000);
        // A provider reporting more cached than input tokens pays no negative input.
        assert_eq!(cost.micro_usd(10, 50, 0), 13);
        assert_eq!(CostConfig::default().micro_usd(1000, 0, 1000), 0);
    }
}
