//! Percent-decoding for path segments and `application/x-www-form-urlencoded` bodies.

/// Decodes `%XX` escapes (and, with `plus_is_space`, `+` as a space, as forms encode it). `None`
/// for a broken escape or a result that is not UTF-8.
pub(crate) fn decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The pairs of a form body, decoded; `None` when any part does not decode.
pub(crate) fn form(body: &str) -> Option<Vec<(String, String)>> {
    body.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some((decode(k, true)?, decode(v, true)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_rejects_broken_ones() {
        assert_eq!(
            decode("arn%3Aaws%3Abedrock%2Fx", false).as_deref(),
            Some("arn:aws:bedrock/x")
        );
        assert_eq!(decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(decode("a+b%2B", true).as_deref(), Some("a b+"));
        assert_eq!(decode("%C3%BC", false).as_deref(), Some("ü"));
        for bad in ["%", "%4", "%zz", "%FF"] {
            assert_eq!(decode(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn form_pairs() {
        let pairs = form("grant_type=urn%3Aietf&assertion=a.b.c&flag").unwrap();
        assert_eq!(
            pairs,
            [
                ("grant_type".to_owned(), "urn:ietf".to_owned()),
                ("assertion".to_owned(), "a.b.c".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
        assert_eq!(form("a=%zz"), None);
    }
}
