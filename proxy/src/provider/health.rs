//! Passive health of one provider: failures evict it for a backoff that doubles with each
//! consecutive eviction, a 429's `Retry-After` sets the duration, a success resets everything.
//! Also the latency EWMA that P2C scores on. Pure: time is passed in.

use std::time::{Duration, Instant};

use agentgateway_crds::proxy_config::EvictionConfig;

/// How long quota or credit exhaustion evicts for, and the cap on a `Retry-After`, unless the
/// backend's `maxDuration` is longer: both mean "this provider is out for a while".
pub const LONG_EVICTION: Duration = Duration::from_secs(300);
/// Weight of a new latency sample in the EWMA.
const EWMA_ALPHA: f64 = 0.25;
/// A latency estimate halves for every this long without a new sample, so a provider that lost
/// one comparison is not starved forever on a stale number.
const EWMA_HALF_LIFE: Duration = Duration::from_secs(10);

/// Why an attempt failed, as far as the provider's health is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// TCP or TLS connect failed or timed out, or the connection broke before a response.
    Connect,
    /// No response (or no first chunk) in time.
    Timeout,
    /// 5xx or 529.
    ServerError,
    /// 429; `Retry-After` when the provider sent one.
    RateLimited(Option<Duration>),
    /// 402 or `insufficient_quota`: out of credit, out for long.
    QuotaExhausted,
    /// 401/403: the provider rejected our key.
    CredentialsRejected,
    /// The stream broke after content was sent.
    StreamCut,
}

impl Failure {
    /// A stable label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect_error",
            Self::Timeout => "timeout",
            Self::ServerError => "server_error",
            Self::RateLimited(_) => "rate_limited",
            Self::QuotaExhausted => "quota_exhausted",
            Self::CredentialsRejected => "credentials_rejected",
            Self::StreamCut => "stream_cut",
        }
    }
}

/// Health and latency state of one provider.
#[derive(Clone, Debug, Default)]
pub struct Health {
    consecutive_failures: u32,
    /// Evictions since the last success; the exponent of the backoff.
    consecutive_evictions: u32,
    evicted_until: Option<Instant>,
    ewma_secs: f64,
    last_sample: Option<Instant>,
}

impl Health {
    /// Whether the provider is out of rotation at `now`.
    pub fn is_evicted(&self, now: Instant) -> bool {
        self.evicted_until.is_some_and(|until| until > now)
    }

    /// When the current eviction ends, if evicted at `now`.
    pub fn eviction_ends(&self, now: Instant) -> Option<Instant> {
        self.evicted_until.filter(|until| *until > now)
    }

    /// Consecutive failures not yet turned into an eviction.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// A success: the provider is healthy again and the backoff starts over.
    pub fn record_success(&mut self, latency: Duration, now: Instant) {
        self.consecutive_failures = 0;
        self.consecutive_evictions = 0;
        self.evicted_until = None;
        let sample = latency.as_secs_f64();
        self.ewma_secs = match self.last_sample {
            None => sample,
            Some(_) => self.decayed_ewma(now) * (1.0 - EWMA_ALPHA) + sample * EWMA_ALPHA,
        };
        self.last_sample = Some(now);
    }

    /// A failure; returns the eviction's duration when it evicts the provider.
    pub fn record_failure(
        &mut self,
        failure: Failure,
        policy: &EvictionConfig,
        now: Instant,
    ) -> Option<Duration> {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let max = Duration::from_millis(policy.max_ms);
        let long = LONG_EVICTION.max(max);
        // An explicit signal from the provider (a Retry-After) acts at once; every other class
        // waits for the backend's consecutiveFailures, so one odd answer evicts nobody.
        let explicit = matches!(failure, Failure::RateLimited(Some(_)));
        if !explicit && self.consecutive_failures < policy.consecutive_failures.max(1) {
            return None;
        }
        let duration = match failure {
            Failure::RateLimited(Some(retry_after)) => retry_after.min(long),
            Failure::QuotaExhausted => long,
            Failure::CredentialsRejected => max,
            _ => self.backoff(policy),
        };
        self.consecutive_failures = 0;
        self.consecutive_evictions = self.consecutive_evictions.saturating_add(1);
        let until = now.checked_add(duration).unwrap_or(now + LONG_EVICTION);
        // A later, shorter eviction (a small Retry-After) never shortens a longer one in force.
        self.evicted_until = Some(self.evicted_until.map_or(until, |u| u.max(until)));
        Some(duration)
    }

    /// `base × 2^evictions`, capped at `max`.
    fn backoff(&self, policy: &EvictionConfig) -> Duration {
        let factor = 1u64 << self.consecutive_evictions.min(20);
        Duration::from_millis(
            policy
                .base_ms
                .saturating_mul(factor)
                .min(policy.max_ms.max(policy.base_ms)),
        )
    }

    /// The latency estimate at `now`, decayed while no sample arrives.
    fn decayed_ewma(&self, now: Instant) -> f64 {
        match self.last_sample {
            None => 0.0,
            Some(at) => {
                let age = now.saturating_duration_since(at).as_secs_f64();
                self.ewma_secs * 0.5f64.powf(age / EWMA_HALF_LIFE.as_secs_f64())
            }
        }
    }

    /// P2C score, lower is better: latency × load, worsened by recent failures.
    pub fn score(&self, in_flight: u32, now: Instant) -> f64 {
        // A floor keeps load meaningful between providers that have no latency sample yet.
        let latency = self.decayed_ewma(now).max(1e-6);
        latency * f64::from(in_flight + 1) * f64::from(1 + self.consecutive_failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> EvictionConfig {
        EvictionConfig {
            base_ms: 5_000,
            max_ms: 60_000,
            consecutive_failures: 1,
        }
    }

    #[test]
    fn backoff_doubles_per_consecutive_eviction_and_is_capped() {
        let mut h = Health::default();
        let now = Instant::now();
        let durations: Vec<u64> = (0..6)
            .map(|_| {
                h.record_failure(Failure::ServerError, &policy(), now)
                    .unwrap()
                    .as_secs()
            })
            .collect();
        assert_eq!(durations, vec![5, 10, 20, 40, 60, 60]);
    }

    #[test]
    fn evicted_provider_returns_after_backoff_and_success_resets_it() {
        let mut h = Health::default();
        let now = Instant::now();
        h.record_failure(Failure::Connect, &policy(), now);
        assert!(h.is_evicted(now + Duration::from_secs(4)));
        assert!(!h.is_evicted(now + Duration::from_secs(5)));
        h.record_success(Duration::from_millis(10), now + Duration::from_secs(6));
        let d = h.record_failure(Failure::Connect, &policy(), now + Duration::from_secs(7));
        assert_eq!(d, Some(Duration::from_secs(5)));
    }

    #[test]
    fn retry_after_sets_the_duration_and_is_capped() {
        let mut h = Health::default();
        let now = Instant::now();
        let d = h.record_failure(
            Failure::RateLimited(Some(Duration::from_secs(3))),
            &policy(),
            now,
        );
        assert_eq!(d, Some(Duration::from_secs(3)));
        let d = h.record_failure(
            Failure::RateLimited(Some(Duration::from_secs(99_999))),
            &policy(),
            now,
        );
        assert_eq!(d, Some(LONG_EVICTION));
    }

    #[test]
    fn only_a_retry_after_evicts_below_the_failure_threshold() {
        let lenient = EvictionConfig {
            consecutive_failures: 3,
            ..policy()
        };
        let now = Instant::now();
        for failure in [
            Failure::RateLimited(None),
            Failure::QuotaExhausted,
            Failure::CredentialsRejected,
            Failure::ServerError,
            Failure::Connect,
            Failure::Timeout,
            Failure::StreamCut,
        ] {
            let mut h = Health::default();
            assert_eq!(
                h.record_failure(failure, &lenient, now),
                None,
                "{failure:?}"
            );
            assert_eq!(
                h.record_failure(failure, &lenient, now),
                None,
                "{failure:?}"
            );
            assert!(
                h.record_failure(failure, &lenient, now).is_some(),
                "{failure:?}"
            );
        }
        let mut h = Health::default();
        assert_eq!(
            h.record_failure(
                Failure::RateLimited(Some(Duration::from_secs(7))),
                &lenient,
                now
            ),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn quota_exhaustion_evicts_for_long() {
        let mut h = Health::default();
        let d = h.record_failure(Failure::QuotaExhausted, &policy(), Instant::now());
        assert_eq!(d, Some(LONG_EVICTION));
    }

    #[test]
    fn consecutive_failures_threshold_is_honoured() {
        let mut h = Health::default();
        let p = EvictionConfig {
            consecutive_failures: 2,
            ..policy()
        };
        let now = Instant::now();
        assert_eq!(h.record_failure(Failure::ServerError, &p, now), None);
        assert!(h.record_failure(Failure::ServerError, &p, now).is_some());
    }

    #[test]
    fn score_grows_with_latency_load_and_failures() {
        let now = Instant::now();
        let mut fast = Health::default();
        fast.record_success(Duration::from_millis(10), now);
        let mut slow = Health::default();
        slow.record_success(Duration::from_millis(100), now);
        assert!(fast.score(0, now) < slow.score(0, now));
        assert!(fast.score(20, now) > slow.score(0, now));
        let decayed = slow.score(0, now + Duration::from_secs(60));
        assert!(decayed < slow.score(0, now) / 50.0);
    }
}
