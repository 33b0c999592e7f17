//! Per-object exponential backoff for transient reconcile errors. kube-runtime has none built in:
//! a failing object would otherwise be retried at a fixed rate, hammering a struggling API server.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The first retry delay.
pub const INITIAL: Duration = Duration::from_secs(1);
/// The longest retry delay.
pub const MAX: Duration = Duration::from_secs(300);

/// The failures of one object.
#[derive(Debug, Default)]
struct Failures {
    /// Consecutive failures.
    count: u32,
    /// When the retry is due.
    retry_at: Option<Instant>,
    /// What failed (a fingerprint of the writes), when the controller says.
    attempt: Option<String>,
}

/// Consecutive failures per object key (`controller/namespace/name`).
#[derive(Debug, Default)]
pub struct Backoff {
    failures: HashMap<String, Failures>,
}

impl Backoff {
    /// Records one more failure of `key` and returns how long to wait before the retry:
    /// 1s, 2s, 4s, ... up to 5 minutes.
    pub fn next_delay(&mut self, key: &str) -> Duration {
        let failures = self.failures.entry(key.to_string()).or_default();
        let delay = delay_after(failures.count);
        failures.count = failures.count.saturating_add(1);
        failures.retry_at = Instant::now().checked_add(delay);
        delay
    }

    /// Records what the failing attempt of `key` was about to write.
    pub fn failed_attempt(&mut self, key: &str, attempt: String) {
        self.failures.entry(key.to_string()).or_default().attempt = Some(attempt);
    }

    /// How long `key` still waits before the same `attempt` may be made again. Controllers are
    /// also woken by unrelated changes (every Gateway wakes when any backend changes); without
    /// this, such wake-ups would repeat a failing write several times a second. A different
    /// attempt (the input changed) is made at once.
    pub fn remaining(&self, key: &str, attempt: &str) -> Option<Duration> {
        let failures = self.failures.get(key)?;
        if failures.attempt.as_deref() != Some(attempt) {
            return None;
        }
        let left = failures.retry_at?.checked_duration_since(Instant::now())?;
        (!left.is_zero()).then_some(left)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn reset(&mut self, key: &str) {
        self.failures.remove(key);
    }

    /// How many objects are currently backing off.
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    /// Whether no object is backing off.
    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The delay after `failures` earlier consecutive failures.
fn delay_after(failures: u32) -> Duration {
    // 2^9 s already exceeds the cap; clamping the exponent keeps the shift from overflowing.
    let factor = 1u32 << failures.min(9);
    INITIAL.saturating_mul(factor).min(MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_one_second_up_to_five_minutes() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..12)
            .map(|_| backoff.next_delay("gateway/ns/gw").as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    }

    #[test]
    fn success_resets_the_delay() {
        let mut backoff = Backoff::default();
        backoff.next_delay("k");
        backoff.next_delay("k");
        backoff.reset("k");
        assert_eq!(backoff.next_delay("k"), INITIAL);
        assert_eq!(backoff.len(), 1);
    }

    #[test]
    fn objects_back_off_independently() {
        let mut backoff = Backoff::default();
        backoff.next_delay("a");
        backoff.next_delay("a");
        assert_eq!(backoff.next_delay("b"), INITIAL);
        assert_eq!(backoff.next_delay("a"), Duration::from_secs(4));
    }

    #[test]
    fn the_same_failed_attempt_waits_and_a_new_one_does_not() {
        let mut backoff = Backoff::default();
        assert_eq!(backoff.remaining("k", "a"), None);
        backoff.failed_attempt("k", "a".into());
        backoff.next_delay("k");
        let left = backoff.remaining("k", "a").unwrap();
        assert!(left <= INITIAL && left > Duration::ZERO);
        assert_eq!(backoff.remaining("k", "b"), None);
        backoff.reset("k");
        assert_eq!(backoff.remaining("k", "a"), None);
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut backoff = Backoff::default();
        for _ in 0..10_000 {
            backoff.next_delay("k");
        }
        assert_eq!(backoff.next_delay("k"), MAX);
    }
}
