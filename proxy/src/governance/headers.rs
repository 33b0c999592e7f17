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
        // Static names: no allocation per response for them.
        let units = [
            (
                [
                    "x-ratelimit-limit-requests",
                    "x-ratelimit-remaining-requests",
                    "x-ratelimit-reset-requests",
                ],
                self.requests,
            ),
            (
                [
                    "x-ratelimit-limit-tokens",
                    "x-ratelimit-remaining-tokens",
                    "x-ratelimit-reset-tokens",
                ],
                self.tokens,
            ),
        ];
        for ([limit, remaining, reset], tightest) in units {
            let Some(t) = tightest else { continue };
            let reset_value = HeaderValue::try_from(format_reset(t.reset))
                .unwrap_or_else(|_| HeaderValue::from_static("0s"));
            headers.insert(HeaderName::from_static(limit), HeaderValue::from(t.limit));
            headers.insert(
                HeaderName::from_static(remaining),
                HeaderValue::from(t.remaining),
            );
            headers.insert(HeaderName::from_static(reset), reset_value);
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
