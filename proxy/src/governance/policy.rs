//! A (rule, backend) pair's effective policy at run time: the consumers' key hashes parsed once per
//! config, the limits and the budget as the compiler resolved them.

use agentgateway_crds::proxy_config::Credentials;
use agentgateway_crds::proxy_config::policy::{
    BudgetConfig, FailureMode, LimitConfig, PolicyConfig,
};

use super::keys::ConsumerKeys;

/// What a request must pass.
#[derive(Debug)]
pub struct PolicyRuntime {
    /// Consumers, when API keys are required (empty: every request is refused).
    pub api_keys: Option<ConsumerKeys>,
    /// Limits counted in this process.
    pub local: Vec<LimitConfig>,
    /// Limits counted in Redis.
    pub global: Vec<LimitConfig>,
    /// What `global` does when Redis does not answer.
    pub failure_mode: FailureMode,
    /// The budget, counted in Redis.
    pub budget: Option<BudgetConfig>,
}

impl PolicyRuntime {
    /// The runtime form of `config`. A missing or malformed key list refuses every request: a
    /// policy that asks for keys never admits a request it cannot check.
    pub fn new(id: &str, config: &PolicyConfig, credentials: &Credentials) -> Self {
        let api_keys = config.api_keys.as_ref().map(|api_keys| {
            let parsed = credentials
                .get(&api_keys.credential)
                .map(|text| ConsumerKeys::parse(text));
            match parsed {
                Some(Ok(keys)) => keys,
                Some(Err(error)) => {
                    tracing::warn!(policy = id, credential = %api_keys.credential, %error, "every request refused with 401: the consumer list is malformed");
                    ConsumerKeys::default()
                }
                None => {
                    tracing::warn!(policy = id, credential = %api_keys.credential, "every request refused with 401: the consumer list is missing from the credentials");
                    ConsumerKeys::default()
                }
            }
        });
        Self {
            api_keys,
            local: config.local.clone(),
            global: config.global.clone(),
            failure_mode: config.failure_mode,
            budget: config.budget.clone(),
        }
    }

    /// Whether anything is counted.
    pub fn counts(&self) -> bool {
        !self.local.is_empty() || self.needs_redis()
    }

    /// Whether anything is counted in Redis.
    pub fn needs_redis(&self) -> bool {
        !self.global.is_empty() || self.budget.is_some()
    }
}
