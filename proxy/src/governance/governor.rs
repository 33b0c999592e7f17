//! Rate limits and budgets on the request path: a request is admitted when every counter that
//! applies has room (local counters first, they cost nothing; then Redis, in one round trip for
//! every global limit and the budget), its tokens reserved up front; when it ends the reservation is
//! corrected to the tokens the provider reported and its cost charged to the budget.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agentgateway_crds::proxy_config::policy::{
    BudgetConfig, BudgetKey, FailureMode, LimitConfig, LimitKey, LimitUnit,
};
use http::StatusCode;

use super::counter::{Adjustment, Admission, CounterCheck};
use super::headers::RateHeaders;
use super::local::LocalCounters;
use super::policy::PolicyRuntime;
use super::shared::SharedCounters;
use super::window::{Window, counter_key, epoch_millis, format_reset};
use crate::metrics::Metrics;
use crate::openai::error::ProxyError;

/// Output tokens reserved for a generating request that sets no `max_tokens` (or its siblings).
pub const DEFAULT_OUTPUT_RESERVATION: u64 = 1024;
/// Request bytes per input token of the reservation's estimate (a common rule of thumb for
/// English text and JSON; the reservation is corrected when the response ends).
pub const BYTES_PER_TOKEN: u64 = 4;

/// The counters of every request of the process: in-process ones, and Redis when configured.
pub struct Governor {
    local: LocalCounters,
    shared: Option<SharedCounters>,
}

/// What a request is counted as.
pub struct Subject<'a> {
    /// The consumer its key identified.
    pub consumer: Option<&'a str>,
    /// `namespace/name` of its route.
    pub route: &'a str,
    /// `namespace/name` of its backend.
    pub backend: &'a str,
    /// Tokens to reserve: the input estimate plus the output asked for.
    pub tokens: u64,
}

/// An admitted request's reservations, corrected when it ends.
#[derive(Debug, Default)]
pub struct Admitted {
    /// Tokens reserved in each token counter.
    reserved_tokens: u64,
    /// Local token counters holding the reservation.
    local_tokens: Vec<String>,
    /// Redis token counters holding the reservation.
    global_tokens: Vec<String>,
    /// The Redis counter the request's cost is added to.
    budget: Option<String>,
}

/// What a request cost when it ended.
pub struct Spent {
    /// Input and output tokens the provider reported; `None` when it reported none.
    pub tokens: Option<u64>,
    /// Whether the request failed before any content reached the client (its reservation is
    /// released whole).
    pub failed: bool,
    /// The request's cost in micro-dollars.
    pub micro_usd: u64,
}

/// A decision's scope and result, for `agentgateway_rate_limit_decisions_total`.
fn count(metrics: &Metrics, scope: &'static str, result: &'static str) {
    metrics.record_rate_limit_decision(scope, result);
}

impl Governor {
    /// A governor counting locally, and in Redis when `shared` is given.
    pub fn new(shared: Option<SharedCounters>) -> Self {
        Self {
            local: LocalCounters::new(),
            shared,
        }
    }

    /// Whether Redis is configured.
    pub fn has_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Admits the request or says why not; `headers` receives the `x-ratelimit-*` values either
    /// way.
    pub async fn admit(
        &self,
        policy: &PolicyRuntime,
        subject: &Subject<'_>,
        metrics: &Metrics,
        headers: &mut RateHeaders,
    ) -> Result<Admitted, ProxyError> {
        let now = now_ms();
        let mut admitted = Admitted::default();
        let local: Vec<(&LimitConfig, CounterCheck)> = policy
            .local
            .iter()
            .map(|limit| (limit, limit_check(limit, subject, now)))
            .collect();
        if !local.is_empty() {
            let checks: Vec<CounterCheck> = local.iter().map(|(_, c)| c.clone()).collect();
            let admission = self.local.admit(&checks);
            headers.observe(&local_limits(&local), &admission);
            match admission {
                Admission::Admitted { .. } => count(metrics, "local", "admitted"),
                Admission::Rejected { counter, .. } => {
                    count(metrics, "local", "rejected");
                    return Err(rate_limited(local[counter].0, &local[counter].1));
                }
            }
            admitted.reserved_tokens = subject.tokens;
            admitted.local_tokens = token_keys(&local);
        }
        if !policy.needs_redis() {
            return Ok(admitted);
        }
        let global: Vec<(&LimitConfig, CounterCheck)> = policy
            .global
            .iter()
            .map(|limit| (limit, limit_check(limit, subject, now)))
            .collect();
        let budget = policy
            .budget
            .as_ref()
            .map(|budget| (budget, budget_check(budget, subject, now)));
        let mut checks: Vec<CounterCheck> = global.iter().map(|(_, c)| c.clone()).collect();
        checks.extend(budget.iter().map(|(_, c)| c.clone()));
        let outcome = match &self.shared {
            Some(shared) => shared.admit(&checks).await.map_err(|e| e.to_string()),
            None => Err("no Redis is configured (--redis-url)".to_string()),
        };
        match outcome {
            Ok(admission) => {
                headers.observe(&local_limits(&global), &admission);
                match admission {
                    Admission::Admitted { .. } => {
                        if !global.is_empty() {
                            count(metrics, "global", "admitted");
                        }
                        if budget.is_some() {
                            count(metrics, "budget", "admitted");
                        }
                        admitted.reserved_tokens = subject.tokens;
                        admitted.global_tokens = token_keys(&global);
                        admitted.budget = budget.map(|(_, check)| check.key);
                        Ok(admitted)
                    }
                    Admission::Rejected { counter, .. } => {
                        self.release(&admitted);
                        match global.get(counter) {
                            Some((limit, check)) => {
                                count(metrics, "global", "rejected");
                                Err(rate_limited(limit, check))
                            }
                            None => {
                                count(metrics, "budget", "rejected");
                                let (budget, check) = budget
                                    .as_ref()
                                    .map(|(b, c)| (*b, c))
                                    .ok_or_else(unavailable)?;
                                Err(budget_exhausted(budget, check))
                            }
                        }
                    }
                }
            }
            Err(error) => {
                let closed = (!global.is_empty() && policy.failure_mode == FailureMode::Closed)
                    || budget.is_some_and(|(b, _)| b.failure_mode == FailureMode::Closed);
                let scope = if global.is_empty() {
                    "budget"
                } else {
                    "global"
                };
                if closed {
                    count(metrics, scope, "failed_closed");
                    tracing::warn!(%error, "Redis did not answer: request refused (failureMode Closed)");
                    self.release(&admitted);
                    Err(unavailable())
                } else {
                    count(metrics, scope, "failed_open");
                    tracing::warn!(%error, "Redis did not answer: request admitted without its shared limits (failureMode Open)");
                    Ok(admitted)
                }
            }
        }
    }

    /// Corrects the reservations of an admitted request to what it spent, and charges its cost.
    /// Local counters at once; Redis in a task of its own (bounded by the Redis timeout), so a
    /// finishing response never waits for it.
    pub fn settle(self: &Arc<Self>, admitted: Admitted, spent: &Spent) {
        let used = if spent.failed { Some(0) } else { spent.tokens };
        // Unknown usage of a request that produced content: the reservation stands.
        let delta = used.map_or(0, |used| signed(used) - signed(admitted.reserved_tokens));
        self.adjust_local(&admitted.local_tokens, delta);
        let mut shared: Vec<Adjustment> = Vec::new();
        if delta != 0 {
            shared.extend(
                admitted
                    .global_tokens
                    .into_iter()
                    .map(|key| Adjustment { key, delta }),
            );
        }
        if let Some(key) = admitted.budget
            && spent.micro_usd > 0
        {
            shared.push(Adjustment {
                key,
                delta: signed(spent.micro_usd),
            });
        }
        if shared.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let governor = Arc::clone(self);
        runtime.spawn(async move {
            if let Some(counters) = &governor.shared
                && let Err(error) = counters.adjust(&shared).await
            {
                tracing::warn!(%error, "Redis did not take a request's final token count or cost: the shared counters keep its reservation");
            }
        });
    }

    /// Gives back the local reservation of a request refused by a later check.
    fn release(&self, admitted: &Admitted) {
        self.adjust_local(&admitted.local_tokens, -signed(admitted.reserved_tokens));
    }

    /// Adds `delta` to each local counter of `keys`.
    fn adjust_local(&self, keys: &[String], delta: i64) {
        if delta == 0 || keys.is_empty() {
            return;
        }
        let adjustments: Vec<Adjustment> = keys
            .iter()
            .map(|key| Adjustment {
                key: key.clone(),
                delta,
            })
            .collect();
        self.local.adjust(&adjustments);
    }
}

/// The tokens to reserve for a request of `body_len` bytes asking for at most `max_output`
/// tokens (`generates`: whether the operation writes output at all).
pub fn tokens_to_reserve(body_len: usize, max_output: Option<u64>, generates: bool) -> u64 {
    let input = (body_len as u64).div_ceil(BYTES_PER_TOKEN);
    let output = match max_output {
        Some(n) => n,
        None if generates => DEFAULT_OUTPUT_RESERVATION,
        None => 0,
    };
    input.saturating_add(output)
}

fn now_ms() -> u64 {
    epoch_millis(SystemTime::now())
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The counter of `limit` this request counts in, in the current window.
fn limit_check(limit: &LimitConfig, subject: &Subject<'_>, now: u64) -> CounterCheck {
    let value = match limit.key {
        LimitKey::Consumer => subject.consumer.unwrap_or(""),
        LimitKey::Route => subject.route,
        LimitKey::Backend => subject.backend,
    };
    let window = Window::rate(limit.per, now);
    // A request larger than the whole limit is admitted into an empty window (then counted in
    // full when it ends) rather than refused for ever.
    let cost = match limit.unit {
        LimitUnit::Requests => 1,
        LimitUnit::Tokens => subject.tokens.min(limit.limit),
    };
    CounterCheck {
        key: counter_key(&limit.id, value, window.start_ms),
        limit: limit.limit,
        need: cost,
        reserve: cost,
        ttl: window.ttl(now),
    }
}

/// The budget's counter: admitted while the spend is below the budget.
fn budget_check(budget: &BudgetConfig, subject: &Subject<'_>, now: u64) -> CounterCheck {
    let value = match budget.key {
        BudgetKey::Consumer => subject.consumer.unwrap_or(""),
        BudgetKey::Route => subject.route,
    };
    let window = Window::budget(budget.per, now);
    CounterCheck {
        key: counter_key(&budget.id, value, window.start_ms),
        limit: budget.micro_usd,
        need: 1,
        reserve: 0,
        ttl: window.ttl(now),
    }
}

fn local_limits<'a>(pairs: &[(&'a LimitConfig, CounterCheck)]) -> Vec<(&'a LimitConfig, Duration)> {
    pairs.iter().map(|(l, c)| (*l, c.ttl)).collect()
}

fn token_keys(pairs: &[(&LimitConfig, CounterCheck)]) -> Vec<String> {
    pairs
        .iter()
        .filter(|(l, _)| l.unit == LimitUnit::Tokens)
        .map(|(_, c)| c.key.clone())
        .collect()
}

/// Whole seconds until `ttl` has passed, at least 1 (`Retry-After` takes seconds).
fn retry_after(ttl: Duration) -> u64 {
    ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)
}

/// `429 rate_limit_exceeded`.
fn rate_limited(limit: &LimitConfig, check: &CounterCheck) -> ProxyError {
    let (unit, kind) = match limit.unit {
        LimitUnit::Requests => ("requests", "requests"),
        LimitUnit::Tokens => ("tokens", "tokens"),
    };
    let mut error = ProxyError::new(
        StatusCode::TOO_MANY_REQUESTS,
        kind,
        "rate_limit_exceeded",
        format!(
            "rate limit reached: {} {unit} per {:?} ({}); retry after {}",
            limit.limit,
            limit.per,
            match limit.key {
                LimitKey::Consumer => "per consumer",
                LimitKey::Route => "per route",
                LimitKey::Backend => "per backend",
            },
            format_reset(check.ttl)
        ),
    );
    error.retry_after_secs = Some(retry_after(check.ttl));
    error
}

/// `429 insufficient_quota`.
fn budget_exhausted(budget: &BudgetConfig, check: &CounterCheck) -> ProxyError {
    let mut error = ProxyError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "insufficient_quota",
        "insufficient_quota",
        format!(
            "budget of {:.2} USD per {:?} exhausted; it resets in {}",
            budget.micro_usd as f64 / 1e6,
            budget.per,
            format_reset(check.ttl)
        ),
    );
    error.retry_after_secs = Some(retry_after(check.ttl));
    error
}

/// `503 rate_limit_unavailable`: Redis did not answer and the policy fails closed.
fn unavailable() -> ProxyError {
    let mut error = ProxyError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "rate_limit_unavailable",
        "the shared rate limits cannot be checked right now (failureMode: Closed)".to_string(),
    );
    error.retry_after_secs = Some(1);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_estimate_input_and_take_the_output_asked_for() {
        assert_eq!(tokens_to_reserve(4000, Some(100), true), 1100);
        assert_eq!(
            tokens_to_reserve(4001, None, true),
            1001 + DEFAULT_OUTPUT_RESERVATION
        );
        assert_eq!(tokens_to_reserve(400, None, false), 100);
        assert_eq!(tokens_to_reserve(0, Some(u64::MAX), true), u64::MAX);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after(Duration::from_millis(1)), 1);
        assert_eq!(retry_after(Duration::from_secs(2)), 2);
        assert_eq!(retry_after(Duration::from_millis(2001)), 3);
    }
}
