//! The windows limits and budgets count in, as pure arithmetic on UNIX epoch milliseconds: every
//! replica computes the same window (and so the same counter key) from its clock, without talking
//! to the others. Rate limits use fixed windows aligned to the epoch (`now / period`); budgets
//! use the calendar day or calendar month, in UTC.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentgateway_crds::proxy_config::policy::{BudgetPeriod, RatePeriod};

const DAY_MS: u64 = 86_400_000;

/// One window of a counter: `[start_ms, end_ms)` in UNIX epoch milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The first millisecond of the window (it names the window's counter).
    pub start_ms: u64,
    /// The first millisecond after the window.
    pub end_ms: u64,
}

impl Window {
    /// The fixed window of `period` that `now_ms` falls in: windows are aligned to the epoch, so
    /// every replica agrees on them.
    pub fn rate(period: RatePeriod, now_ms: u64) -> Self {
        let length = period.millis();
        let start_ms = rate_window_index(period, now_ms) * length;
        Self {
            start_ms,
            end_ms: start_ms.saturating_add(length),
        }
    }

    /// The calendar day or calendar month (UTC) that `now_ms` falls in.
    pub fn budget(period: BudgetPeriod, now_ms: u64) -> Self {
        match period {
            BudgetPeriod::Day => {
                let start_ms = now_ms - now_ms % DAY_MS;
                Self {
                    start_ms,
                    end_ms: start_ms.saturating_add(DAY_MS),
                }
            }
            BudgetPeriod::Month => {
                let (year, month, _) = civil_from_days(days(now_ms));
                let (next_year, next_month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                Self {
                    start_ms: day_start_ms(days_from_civil(year, month, 1)),
                    end_ms: day_start_ms(days_from_civil(next_year, next_month, 1)),
                }
            }
        }
    }

    /// How long until the window ends (zero once it has).
    pub fn remaining(&self, now_ms: u64) -> Duration {
        Duration::from_millis(self.end_ms.saturating_sub(now_ms))
    }

    /// The expiry to give the window's counter: the time remaining, at least 1 ms (Redis deletes
    /// a key at once when told to expire it in 0 ms).
    pub fn ttl(&self, now_ms: u64) -> Duration {
        self.remaining(now_ms).max(Duration::from_millis(1))
    }
}

/// The index of the fixed window of `period` that `now_ms` falls in (windows since the epoch).
pub fn rate_window_index(period: RatePeriod, now_ms: u64) -> u64 {
    now_ms / period.millis()
}

/// `time` in UNIX epoch milliseconds (0 for a clock set before 1970).
pub fn epoch_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The name of a counter: `agw:{<limit_id>}:<key_value>:<window_start_ms>`. The braces make the
/// limit id a Redis Cluster hash tag. `{`, `}`, `:` and `%` in either part are percent-escaped, so
/// that no id or key value (a Secret name, a `namespace/name`) can ever spell another counter's
/// name.
pub fn counter_key(limit_id: &str, key_value: &str, window_start_ms: u64) -> String {
    let mut key = String::with_capacity(limit_id.len() + key_value.len() + 32);
    key.push_str("agw:{");
    escape_into(&mut key, limit_id);
    key.push_str("}:");
    escape_into(&mut key, key_value);
    // Writing to a String cannot fail.
    let _ = write!(key, ":{window_start_ms}");
    key
}

fn escape_into(out: &mut String, part: &str) {
    for c in part.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
}

/// `duration` the way OpenAI's `x-ratelimit-reset-requests` / `-tokens` headers say it (Go's
/// duration format, to the millisecond): `"20ms"`, `"1s"`, `"59.1s"`, `"6m0s"`, `"1h2m3s"`.
/// Rounded up, so that a client that waits exactly this long finds the window reset.
pub fn format_reset(duration: Duration) -> String {
    let ms = u64::try_from(duration.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let hours = ms / 3_600_000;
    let minutes = ms / 60_000 % 60;
    let seconds = ms / 1_000 % 60;
    let millis = ms % 1_000;
    let mut out = String::new();
    // Writing to a String cannot fail.
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{seconds}");
    if millis > 0 {
        let fraction = format!("{millis:03}");
        let _ = write!(out, ".{}", fraction.trim_end_matches('0'));
    }
    out.push('s');
    out
}

/// Days since 1970-01-01 of the UTC day `ms` falls in.
fn days(ms: u64) -> i64 {
    // u64::MAX / DAY_MS fits an i64 easily.
    i64::try_from(ms / DAY_MS).unwrap_or(i64::MAX)
}

fn day_start_ms(days: i64) -> u64 {
    u64::try_from(days).unwrap_or(0).saturating_mul(DAY_MS)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date `(year, month, day)` of a day since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=31, 1..=12).
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-02-29T13:14:15.678Z.
    const LEAP_DAY: u64 = 1_709_212_455_678;

    fn ms(year: i64, month: u32, day: u32, hour: u64, minute: u64, second: u64) -> u64 {
        day_start_ms(days_from_civil(year, month, day))
            + ((hour * 60 + minute) * 60 + second) * 1000
    }

    #[test]
    fn civil_dates_round_trip_and_match_known_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for day in -800_000..800_000 {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day, "{y}-{m}-{d}");
        }
        assert_eq!(ms(2024, 2, 29, 13, 14, 15) + 678, LEAP_DAY);
    }

    #[test]
    fn rate_windows_are_aligned_to_the_epoch() {
        let now = LEAP_DAY;
        let second = Window::rate(RatePeriod::Second, now);
        assert_eq!(second.start_ms, now - 678);
        assert_eq!(second.end_ms, now - 678 + 1000);
        assert_eq!(second.remaining(now), Duration::from_millis(322));
        assert_eq!(rate_window_index(RatePeriod::Second, now), now / 1000);

        let minute = Window::rate(RatePeriod::Minute, now);
        assert_eq!(minute.start_ms, ms(2024, 2, 29, 13, 14, 0));
        assert_eq!(minute.remaining(now), Duration::from_millis(44_322));

        let hour = Window::rate(RatePeriod::Hour, now);
        assert_eq!(hour.start_ms, ms(2024, 2, 29, 13, 0, 0));
        assert_eq!(hour.end_ms, ms(2024, 2, 29, 14, 0, 0));

        let day = Window::rate(RatePeriod::Day, now);
        assert_eq!(day.start_ms, ms(2024, 2, 29, 0, 0, 0));
        assert_eq!(day.end_ms, ms(2024, 3, 1, 0, 0, 0));
        assert_eq!(rate_window_index(RatePeriod::Day, now), 19_782);
    }

    #[test]
    fn a_window_starts_at_its_first_millisecond_and_ends_before_the_next() {
        let start = ms(2024, 2, 29, 13, 14, 0);
        assert_eq!(Window::rate(RatePeriod::Minute, start).start_ms, start);
        assert_eq!(Window::rate(RatePeriod::Minute, start - 1).end_ms, start);
        assert_eq!(
            Window::rate(RatePeriod::Minute, start + 59_999).start_ms,
            start
        );
        let window = Window::rate(RatePeriod::Minute, start - 1);
        assert_eq!(window.remaining(start - 1), Duration::from_millis(1));
        assert_eq!(window.remaining(start + 5), Duration::ZERO);
        assert_eq!(window.ttl(start + 5), Duration::from_millis(1));
    }

    #[test]
    fn budget_days_and_months_are_utc_calendar_periods() {
        let day = Window::budget(BudgetPeriod::Day, LEAP_DAY);
        assert_eq!(day.start_ms, ms(2024, 2, 29, 0, 0, 0));
        assert_eq!(day.end_ms, ms(2024, 3, 1, 0, 0, 0));

        let month = Window::budget(BudgetPeriod::Month, LEAP_DAY);
        assert_eq!(month.start_ms, ms(2024, 2, 1, 0, 0, 0));
        assert_eq!(month.end_ms, ms(2024, 3, 1, 0, 0, 0));
        assert_eq!(month.end_ms - month.start_ms, 29 * DAY_MS);

        let february_2023 = Window::budget(BudgetPeriod::Month, ms(2023, 2, 10, 0, 0, 0));
        assert_eq!(february_2023.end_ms - february_2023.start_ms, 28 * DAY_MS);

        let december = Window::budget(BudgetPeriod::Month, ms(2025, 12, 31, 23, 59, 59) + 999);
        assert_eq!(december.start_ms, ms(2025, 12, 1, 0, 0, 0));
        assert_eq!(december.end_ms, ms(2026, 1, 1, 0, 0, 0));
        assert_eq!(
            Window::budget(BudgetPeriod::Month, december.end_ms).start_ms,
            december.end_ms
        );

        let epoch = Window::budget(BudgetPeriod::Month, 0);
        assert_eq!((epoch.start_ms, epoch.end_ms), (0, 31 * DAY_MS));

        for month in 1..=12 {
            let start = ms(2030, month, 1, 0, 0, 0);
            let window = Window::budget(BudgetPeriod::Month, start + 12 * DAY_MS);
            assert_eq!(window.start_ms, start, "month {month}");
        }
    }

    #[test]
    fn extreme_clocks_do_not_overflow() {
        let end = Window::rate(RatePeriod::Day, u64::MAX);
        assert!(end.start_ms < end.end_ms && end.end_ms == u64::MAX);
        let month = Window::budget(BudgetPeriod::Month, u64::MAX);
        assert!(month.start_ms < month.end_ms && month.end_ms == u64::MAX);
        assert_eq!(epoch_millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(
            epoch_millis(UNIX_EPOCH + Duration::from_millis(LEAP_DAY)),
            LEAP_DAY
        );
    }

    #[test]
    fn counter_keys_carry_a_hash_tag_and_cannot_be_forged() {
        assert_eq!(
            counter_key("team-a/gold/global/0", "alice", 1_700_000_000_000),
            "agw:{team-a/gold/global/0}:alice:1700000000000"
        );
        assert_eq!(
            counter_key("ns/p/budget", "ns/route", 0),
            "agw:{ns/p/budget}:ns/route:0"
        );
        // A key value that spells a different id or window is escaped, so it stays in its own.
        let forged = counter_key("a", "x}:y:{b", 5);
        assert_eq!(forged, "agw:{a}:x%7D%3Ay%3A%7Bb:5");
        assert_ne!(counter_key("a", "b:1", 2), counter_key("a", "b", 1));
        assert_ne!(counter_key("a:b", "c", 1), counter_key("a", "b:c", 1));
        // The escape itself is escaped: "%3A" as a value is not ":".
        assert_ne!(counter_key("a", "%3A", 1), counter_key("a", ":", 1));
        assert_eq!(counter_key("a", "%3A", 1), "agw:{a}:%253A:1");
        assert_eq!(counter_key("{a}", "", 1), "agw:{%7Ba%7D}::1");
    }

    #[test]
    fn reset_durations_read_like_openai_headers() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_micros(1), "1ms"),
            (Duration::from_millis(20), "20ms"),
            (Duration::from_millis(999), "999ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_millis(59_100), "59.1s"),
            (Duration::from_millis(59_999), "59.999s"),
            (Duration::from_micros(59_099_001), "59.1s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(360), "6m0s"),
            (Duration::from_millis(361_250), "6m1.25s"),
            (Duration::from_secs(3_600), "1h0m0s"),
            (Duration::from_secs(3_723), "1h2m3s"),
            (Duration::from_secs(86_400), "24h0m0s"),
        ];
        for (duration, text) in cases {
            assert_eq!(format_reset(duration), text, "{duration:?}");
        }
    }
}
