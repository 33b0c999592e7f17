//! Counters kept in this process, for `local` rate limits: the same semantics as the Redis store
//! ([`super::shared::SharedCounters`]) — all-or-nothing admission, expiry at the window's end,
//! corrections only to live counters, never below 0 — so a limit behaves the same wherever it is
//! counted.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::counter::{Adjustment, Admission, CounterCheck};

/// Expired entries are swept once the map has grown past this many entries (and past twice the
/// size it had after the last sweep), so a sweep's cost is amortized over the inserts since.
const SWEEP_MIN_ENTRIES: usize = 1024;
/// And at least this often while admissions happen, so a map that stops growing still drops its
/// expired windows.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// In-process counters. One mutex over the whole map makes an admission atomic across all its
/// counters; it is held only for the few map operations of one call (never across an await).
///
/// Memory is bounded: every entry expires with its window, and expired entries are removed by a
/// sweep that runs when the map has doubled since the last sweep (at least [`SWEEP_MIN_ENTRIES`])
/// or [`SWEEP_INTERVAL`] after the last one, so the map holds at most about twice the counters of
/// the live windows, plus those expired since the last sweep.
pub struct LocalCounters {
    state: Mutex<State>,
}

struct State {
    entries: HashMap<String, Entry>,
    /// Sweep when `entries` grows past this.
    sweep_above: usize,
    /// Sweep on the first admission after this.
    next_sweep: Instant,
}

struct Entry {
    value: u64,
    expires_at: Instant,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires_at > now
    }
}

impl Default for LocalCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalCounters {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                entries: HashMap::new(),
                sweep_above: SWEEP_MIN_ENTRIES,
                next_sweep: Instant::now() + SWEEP_INTERVAL,
            }),
        }
    }

    /// Admits a request if every counter has room (`used + need <= limit`), reserving each
    /// check's `reserve` only then; see [`CounterCheck`].
    pub fn admit(&self, checks: &[CounterCheck]) -> Admission {
        self.admit_at(checks, Instant::now())
    }

    /// Applies corrections to the counters that are still live; see [`Adjustment`].
    pub fn adjust(&self, adjustments: &[Adjustment]) {
        self.adjust_at(adjustments, Instant::now());
    }

    /// Counters currently held (live or not yet swept).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no counter is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The map stays consistent whatever panicked while holding it: every update is a single
        // assignment.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn admit_at(&self, checks: &[CounterCheck], now: Instant) -> Admission {
        let mut state = self.lock();
        state.sweep_if_due(now);
        let mut used: Vec<u64> = checks
            .iter()
            .map(|check| {
                state
                    .entries
                    .get(check.key.as_str())
                    .filter(|entry| entry.live(now))
                    .map_or(0, |entry| entry.value)
            })
            .collect();
        if let Some(counter) = checks
            .iter()
            .zip(&used)
            .position(|(check, used)| used.saturating_add(check.need) > check.limit)
        {
            return Admission::Rejected { counter, used };
        }
        for (check, used) in checks.iter().zip(used.iter_mut()) {
            let expires_at = now + check.ttl;
            let entry = state
                .entries
                .entry(check.key.clone())
                .and_modify(|entry| {
                    if !entry.live(now) {
                        // The window ended: this is a new counter, as a new Redis key would be.
                        *entry = Entry {
                            value: 0,
                            expires_at,
                        };
                    }
                })
                .or_insert(Entry {
                    value: 0,
                    expires_at,
                });
            entry.value = entry.value.saturating_add(check.reserve);
            *used = entry.value;
        }
        Admission::Admitted { used }
    }

    fn adjust_at(&self, adjustments: &[Adjustment], now: Instant) {
        let mut state = self.lock();
        for adjustment in adjustments {
            if let Some(entry) = state
                .entries
                .get_mut(adjustment.key.as_str())
                .filter(|entry| entry.live(now))
            {
                entry.value = if adjustment.delta < 0 {
                    entry.value.saturating_sub(adjustment.delta.unsigned_abs())
                } else {
                    entry.value.saturating_add(adjustment.delta.unsigned_abs())
                };
            }
        }
    }
}

impl State {
    fn sweep_if_due(&mut self, now: Instant) {
        if self.entries.len() <= self.sweep_above && now < self.next_sweep {
            return;
        }
        let before = self.entries.len();
        self.entries.retain(|_, entry| entry.live(now));
        self.sweep_above = (self.entries.len() * 2).max(SWEEP_MIN_ENTRIES);
        self.next_sweep = now + SWEEP_INTERVAL;
        tracing::trace!(
            before,
            after = self.entries.len(),
            "swept expired local rate-limit counters"
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(key: &str, limit: u64, reserve: u64, ttl_ms: u64) -> CounterCheck {
        CounterCheck {
            key: key.to_owned(),
            limit,
            need: reserve,
            reserve,
            ttl: Duration::from_millis(ttl_ms),
        }
    }

    fn adjust(key: &str, delta: i64) -> Adjustment {
        Adjustment {
            key: key.to_owned(),
            delta,
        }
    }

    fn value(counters: &LocalCounters, key: &str, now: Instant) -> u64 {
        counters
            .admit_at(&[check(key, u64::MAX, 0, 60_000)], now)
            .used()[0]
    }

    #[test]
    fn admission_is_all_or_nothing() {
        let counters = LocalCounters::new();
        let now = Instant::now();
        let both = [check("a", 10, 6, 60_000), check("b", 5, 3, 60_000)];
        assert_eq!(
            counters.admit_at(&both, now),
            Admission::Admitted { used: vec![6, 3] }
        );
        // "b" has room, "a" has not: nothing is added to "b".
        let again = [check("b", 5, 2, 60_000), check("a", 10, 6, 60_000)];
        assert_eq!(
            counters.admit_at(&again, now),
            Admission::Rejected {
                counter: 1,
                used: vec![3, 6]
            }
        );
        assert_eq!(value(&counters, "b", now), 3);
        // Exactly reaching the limit is admitted.
        assert_eq!(
            counters.admit_at(&[check("a", 10, 4, 60_000)], now),
            Admission::Admitted { used: vec![10] }
        );
        assert!(
            !counters
                .admit_at(&[check("a", 10, 1, 60_000)], now)
                .admitted()
        );
        assert_eq!(
            counters.admit_at(&[], now),
            Admission::Admitted { used: vec![] }
        );
    }

    #[test]
    fn a_budget_check_admits_while_spend_is_under_the_budget() {
        let counters = LocalCounters::new();
        let now = Instant::now();
        let budget = CounterCheck {
            key: "spend".to_owned(),
            limit: 100,
            need: 1,
            reserve: 0,
            ttl: Duration::from_secs(60),
        };
        assert_eq!(
            counters.admit_at(std::slice::from_ref(&budget), now),
            Admission::Admitted { used: vec![0] }
        );
        // Admission created the counter, so the spend recorded at the response's end counts.
        counters.adjust_at(&[adjust("spend", 99)], now);
        assert!(
            counters
                .admit_at(std::slice::from_ref(&budget), now)
                .admitted()
        );
        counters.adjust_at(&[adjust("spend", 1)], now);
        assert_eq!(
            counters.admit_at(std::slice::from_ref(&budget), now),
            Admission::Rejected {
                counter: 0,
                used: vec![100]
            }
        );
    }

    #[test]
    fn reconciling_a_reservation_down_frees_room() {
        let counters = LocalCounters::new();
        let now = Instant::now();
        assert!(
            counters
                .admit_at(&[check("t", 100, 80, 60_000)], now)
                .admitted()
        );
        assert!(
            !counters
                .admit_at(&[check("t", 100, 30, 60_000)], now)
                .admitted()
        );
        // The response used 20 of the 80 reserved.
        counters.adjust_at(&[adjust("t", -60)], now);
        assert_eq!(
            counters.admit_at(&[check("t", 100, 30, 60_000)], now),
            Admission::Admitted { used: vec![50] }
        );
        // And one that used more than it reserved is charged the rest.
        counters.adjust_at(&[adjust("t", 45)], now);
        assert_eq!(value(&counters, "t", now), 95);
    }

    #[test]
    fn a_counter_never_goes_below_zero() {
        let counters = LocalCounters::new();
        let now = Instant::now();
        assert!(
            counters
                .admit_at(&[check("t", 100, 10, 60_000)], now)
                .admitted()
        );
        counters.adjust_at(&[adjust("t", -50), adjust("t", i64::MIN)], now);
        assert_eq!(value(&counters, "t", now), 0);
        counters.adjust_at(
            &[adjust("t", i64::MAX), adjust("t", i64::MAX), adjust("t", 5)],
            now,
        );
        assert_eq!(value(&counters, "t", now), u64::MAX);
    }

    #[test]
    fn a_window_resets_when_its_counter_expires() {
        let counters = LocalCounters::new();
        let start = Instant::now();
        assert!(
            counters
                .admit_at(&[check("w", 10, 10, 1_000)], start)
                .admitted()
        );
        let later = start + Duration::from_millis(999);
        assert!(
            !counters
                .admit_at(&[check("w", 10, 1, 1_000)], later)
                .admitted()
        );
        // The expiry is set when the counter is created, never extended by later admissions.
        let ended = start + Duration::from_millis(1_000);
        assert_eq!(
            counters.admit_at(&[check("w", 10, 4, 1_000)], ended),
            Admission::Admitted { used: vec![4] }
        );
    }

    #[test]
    fn adjusting_an_expired_or_missing_counter_does_nothing() {
        let counters = LocalCounters::new();
        let start = Instant::now();
        assert!(
            counters
                .admit_at(&[check("w", 10, 5, 1_000)], start)
                .admitted()
        );
        let ended = start + Duration::from_secs(2);
        counters.adjust_at(&[adjust("w", 3), adjust("never", 7)], ended);
        assert_eq!(value(&counters, "never", ended), 0);
        assert_eq!(
            counters.admit_at(&[check("w", 10, 0, 1_000)], ended),
            Admission::Admitted { used: vec![0] }
        );
    }

    #[test]
    fn expired_counters_do_not_accumulate() {
        let counters = LocalCounters::new();
        let mut now = Instant::now();
        // A counter per request, each in a window of 1 s: 50 000 requests over 50 s.
        for i in 0..50_000u64 {
            if i % 1_000 == 0 {
                now += Duration::from_secs(1);
            }
            assert!(
                counters
                    .admit_at(&[check(&format!("k{i}"), 1, 1, 1_000)], now)
                    .admitted()
            );
            assert!(
                counters.len() <= 2 * SWEEP_MIN_ENTRIES + 1,
                "{}",
                counters.len()
            );
        }
        // A map that stops growing is swept on time.
        let much_later = now + SWEEP_INTERVAL + Duration::from_secs(1);
        counters.admit_at(&[], much_later);
        assert!(counters.is_empty());
    }
}
