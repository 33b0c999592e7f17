//! Durations as the Gateway API writes them (`"500ms"`, `"10s"`, `"1m30s"`, `"1h"`): a sequence of
//! decimal numbers each followed by a unit, the subset of Go's `time.ParseDuration` users write.

use std::time::Duration;

/// Why a duration string did not parse. The message is shown to users after the field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError(pub String);

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DurationError {}

/// Parses `"1h2m3s4ms"`-style durations. Units: `h`, `m`, `s`, `ms`. Fractions (`"1.5s"`) are allowed.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let invalid = || {
        DurationError(format!(
            "invalid duration {text:?}: expected e.g. \"500ms\", \"10s\", \"1m30s\""
        ))
    };
    let mut rest = text.trim();
    if rest.is_empty() || rest != text {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        if digits == 0 {
            return Err(invalid());
        }
        let value: f64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(invalid()),
        };
        total += value * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 366.0 * 24.0 * 3600.0 {
        return Err(DurationError(format!(
            "invalid duration {text:?}: too long"
        )));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_users_write() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn rejects_numbers_without_units_and_unknown_units() {
        for bad in ["", "10", "s", "10x", " 10s", "10s ", "-1s", "1d", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
