//! OpenAI's rate-limit headers (`x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`,
//! `x-ratelimit-reset-requests` and the `-tokens` forms), describing the tightest limit of each
//! unit that applies to the request: the one with the least room left.

use std::time::Duration;

use agentgateway_crds::proxy_config::policy::{LimitConfig, LimitUnit};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::counter::Admission;
use super::window::format_reset;

/// One unit's tightest limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tightest {
    limit: u64,
    remaining: u64,
    reset: Duration,
}

/// The values the response carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateHeaders {
    requests: Option<Tightest>,
    tokens: Option<Tightest>,
}

impl RateHeaders {
    /// Takes in the counters of `limits` (each with its window's remaining time) as `admission`
    /// left them.
    pub fn observe(&mut self, limits: &[(&LimitConfig, Duration)], admission: &Admission) {
        let used = match admission {
            Admission::Admitted { used } | Admission::Rejected { used, .. } => used,
        };
        for ((limit, reset), used) in limits.iter().zip(used) {
            let candidate = Tightest {
                limit: limit.limit,
                remaining: limit.limit.saturating_sub(*used),
                reset: *reset,
            };
            let slot = match limit.unit {
                LimitUnit::Requests => &mut self.requests,
                LimitUnit::Tokens => &mut self.tokens,
            };
            if slot.is_none_or(|current| candidate.remaining < current.remaining) {
                *slot = Some(candidate);
            }
        }
    }

    /// Whether there is anything to send.
    pub fn is_empty(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none()
    }

    /// Writes the headers.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let units = [("requests", self.requests), ("tokens", self.tokens)];
        for (unit, tightest) in units {
            let Some(t) = tightest else { continue };
            let values = [
                ("limit", HeaderValue::from(t.limit)),
                ("remaining", HeaderValue::from(t.remaining)),
                (
                    "reset",
                    HeaderValue::try_from(format_reset(t.reset))
                        .unwrap_or_else(|_| HeaderValue::from_static("0s")),
                ),
            ];
            for (what, value) in values {
                if let Ok(name) = HeaderName::try_from(format!("x-ratelimit-{what}-{unit}")) {
                    headers.insert(name, value);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limit(unit: LimitUnit, n: u64) -> LimitConfig {
        LimitConfig {
            id: "x".into(),
            unit,
            limit: n,
            ..LimitConfig::default()
        }
    }

    #[test]
    fn the_tightest_limit_of_each_unit_is_sent() {
        let (per_minute, per_day) = (
            limit(LimitUnit::Tokens, 1000),
            limit(LimitUnit::Tokens, 5000),
        );
        let requests = limit(LimitUnit::Requests, 10);
        let mut headers = RateHeaders::default();
        assert!(headers.is_empty());
        headers.observe(
            &[
                (&per_minute, Duration::from_secs(6)),
                (&per_day, Duration::from_secs(3600)),
                (&requests, Duration::from_millis(1500)),
            ],
            &Admission::Admitted {
                used: vec![100, 4950, 3],
            },
        );
        let mut map = HeaderMap::new();
        headers.apply(&mut map);
        let get = |name: &str| map.get(name).unwrap().to_str().unwrap().to_string();
        assert_eq!(get("x-ratelimit-limit-tokens"), "5000");
        assert_eq!(get("x-ratelimit-remaining-tokens"), "50");
        assert_eq!(get("x-ratelimit-reset-tokens"), "1h0m0s");
        assert_eq!(get("x-ratelimit-limit-requests"), "10");
        assert_eq!(get("x-ratelimit-remaining-requests"), "7");
        assert_eq!(get("x-ratelimit-reset-requests"), "1.5s");
    }
}
