//! Kubernetes resource quantities (`100m`, `64Mi`, `1.5`, `2e3`): k8s-openapi keeps them as
//! strings, so their syntax is checked here, and their values compared (a request must not exceed
//! its limit) the way the API server would.

/// The longest quantity accepted, in bytes.
pub const MAX_QUANTITY_LEN: usize = 64;

/// The value of a non-negative quantity, or `None` when it is not one. The value is approximate
/// (an `f64`), which is exact enough to order requests and limits.
pub fn parse_quantity(text: &str) -> Option<f64> {
    if text.is_empty() || text.len() > MAX_QUANTITY_LEN {
        return None;
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let mantissa: f64 = number.parse().ok()?;
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty()
                || unsigned.len() > 3
                || !unsigned.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let power: i32 = digits.parse().ok()?;
            10f64.powi(power)
        }
    };
    let value = mantissa * multiplier;
    value.is_finite().then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_servers_quantity_forms_parse() {
        assert_eq!(parse_quantity("100m"), Some(0.1));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("64Mi"), Some(64.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("1.5G"), Some(1.5e9));
        assert_eq!(parse_quantity("2e3"), Some(2000.0));
        assert_eq!(parse_quantity("+1k"), Some(1000.0));
        assert_eq!(parse_quantity(".5"), Some(0.5));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "", "-1", "1 Gi", "1GB", "Mi", "1.2.3", ".", "1e", "1e1000", "1x", "0x10", "one",
        ] {
            assert_eq!(parse_quantity(bad), None, "{bad:?}");
        }
        assert_eq!(parse_quantity(&"9".repeat(65)), None);
    }
}
