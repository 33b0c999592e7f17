//! The access log: one JSON object per request, written by a small dedicated formatter straight
//! to the process's non-blocking stdout writer. tracing's generic JSON formatter costs about as
//! much CPU as proxying the request; this one a few percent. Without a writer (the library in
//! tests) lines go through `tracing` at target `access` instead.

use std::borrow::Cow;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_appender::non_blocking::NonBlocking;

use crate::record::RequestRecord;

/// Where access lines go.
#[derive(Clone, Default)]
pub enum AccessLog {
    /// Through `tracing` (target `access`).
    #[default]
    Tracing,
    /// Straight to this writer, one JSON line per request.
    Json(NonBlocking),
    /// Nowhere.
    Off,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tracing => "AccessLog::Tracing",
            Self::Json(_) => "AccessLog::Json",
            Self::Off => "AccessLog::Off",
        })
    }
}

impl AccessLog {
    /// Logs one finished request.
    pub fn write(&self, record: &RequestRecord, duration_ms: f64) {
        match self {
            Self::Off => {}
            Self::Tracing => trace_line(record, duration_ms),
            Self::Json(writer) => {
                let line = json_line(record, duration_ms, SystemTime::now());
                // A full buffer drops the line rather than stalling the request path.
                let _ = writer.clone().write_all(&line);
            }
        }
    }
}

/// The most bytes of a client- or provider-supplied string a log line carries.
pub const MAX_LOGGED_TEXT: usize = 256;

/// A string from outside (a path, a model name) as logs may carry it: at most
/// [`MAX_LOGGED_TEXT`] bytes (cut at a character boundary, marked with `…`) and with control
/// characters escaped (`\n`, `\u{1b}`), so it can neither forge a line nor flood the log.
pub fn client_text(text: &str) -> Cow<'_, str> {
    let cut = if text.len() > MAX_LOGGED_TEXT {
        let mut end = MAX_LOGGED_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Some(end)
    } else {
        None
    };
    let kept = &text[..cut.unwrap_or(text.len())];
    // The usual case, printable ASCII, checked bytewise; anything else by characters.
    let clean = if kept.is_ascii() {
        !kept.bytes().any(|b| b < 0x20 || b == 0x7f)
    } else {
        !kept.chars().any(char::is_control)
    };
    if cut.is_none() && clean {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(kept.len() + 8);
    for c in kept.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if cut.is_some() {
        out.push('…');
    }
    Cow::Owned(out)
}

fn trace_line(record: &RequestRecord, duration_ms: f64) {
    let usage = record.usage.unwrap_or_default();
    tracing::info!(
        target: "access",
        listener = %record.listener,
        method = %record.method,
        path = %record.path,
        operation = record.operation.as_str(),
        route = record.route.as_deref().unwrap_or(""),
        backend = record.backend.as_deref().unwrap_or(""),
        consumer = record.consumer.as_deref().unwrap_or(""),
        provider = record.provider_name().map_or("", |p| p),
        model = %client_text(record.model().unwrap_or("")),
        status = record.status,
        stream = record.stream,
        prompt_tokens = usage.prompt,
        completion_tokens = usage.completion,
        total_tokens = usage.total,
        cached_tokens = usage.cached,
        reasoning_tokens = usage.reasoning,
        attempts = record.attempts,
        cost_usd = record.cost_micro_usd().map(|c| c as f64 / 1e6),
        ttft_ms = record.ttft.map(|t| t.as_secs_f64() * 1000.0),
        duration_ms,
        error = record.error,
    );
}

/// The JSON line of a request, newline included.
pub fn json_line(record: &RequestRecord, duration_ms: f64, now: SystemTime) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let usage = record.usage.unwrap_or_default();
    out.extend_from_slice(b"{\"timestamp\":\"");
    write_rfc3339(&mut out, now);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"target\":\"access\"");
    let text = |out: &mut Vec<u8>, name: &str, value: &str| {
        key(out, name);
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    };
    text(&mut out, "listener", &record.listener);
    text(&mut out, "method", record.method.as_str());
    text(&mut out, "path", &record.path);
    text(&mut out, "operation", record.operation.as_str());
    text(&mut out, "route", record.route.as_deref().unwrap_or(""));
    text(&mut out, "backend", record.backend.as_deref().unwrap_or(""));
    if let Some(consumer) = &record.consumer {
        text(&mut out, "consumer", consumer);
    }
    text(
        &mut out,
        "provider",
        record.provider_name().map_or("", |p| p),
    );
    text(
        &mut out,
        "model",
        &client_text(record.model().unwrap_or("")),
    );
    // Numbers by hand: `write!` and its formatting machinery were a third of the line's cost.
    number(&mut out, "status", u64::from(record.status));
    out.extend_from_slice(if record.stream {
        b",\"stream\":true"
    } else {
        b",\"stream\":false"
    });
    number(&mut out, "prompt_tokens", usage.prompt);
    number(&mut out, "completion_tokens", usage.completion);
    number(&mut out, "total_tokens", usage.total);
    number(&mut out, "cached_tokens", usage.cached);
    number(&mut out, "reasoning_tokens", usage.reasoning);
    number(&mut out, "attempts", u64::from(record.attempts));
    if let Some(micro_usd) = record.cost_micro_usd() {
        decimal(&mut out, "cost_usd", micro_usd, 6);
    }
    if let Some(ttft) = record.ttft {
        decimal(&mut out, "ttft_ms", ttft.as_micros() as u64, 3);
    }
    decimal(
        &mut out,
        "duration_ms",
        (duration_ms * 1000.0).round() as u64,
        3,
    );
    if let Some(error) = record.error {
        text(&mut out, "error", error);
    }
    out.extend_from_slice(b"}\n");
    out
}

/// `,"name":` (names are the proxy's own: no escaping needed).
fn key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// `,"name":value`.
fn number(out: &mut Vec<u8>, name: &str, value: u64) {
    key(out, name);
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// `,"name":` and `units / 10^places` with exactly `places` decimals (`1.500` for 1500, 3).
fn decimal(out: &mut Vec<u8>, name: &str, units: u64, places: u32) {
    let scale = 10u64.pow(places);
    key(out, name);
    out.extend_from_slice(itoa::Buffer::new().format(units / scale).as_bytes());
    out.push(b'.');
    digits(out, units % scale, places as usize);
}

/// `value` in exactly `width` digits, zero-padded (the value is below 10^width).
fn digits(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let text = buffer.format(value);
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(text.len())));
    out.extend_from_slice(text.as_bytes());
}

/// `2026-11-24T02:44:02.122031Z` (UTC, microseconds).
fn write_rfc3339(out: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    digits(out, year.max(0) as u64, 4);
    for (separator, value, width) in [
        (b'-', month as u64, 2),
        (b'-', day as u64, 2),
        (b'T', rem / 3600, 2),
        (b':', rem % 3600 / 60, 2),
        (b':', rem % 60, 2),
        (b'.', u64::from(since.subsec_micros()), 6),
    ] {
        out.push(separator);
        digits(out, value, width);
    }
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::operation::Operation;
    use crate::openai::usage::Usage;
    use std::time::Duration;

    #[test]
    fn a_line_is_one_json_object_with_every_field() {
        let parts = http::Request::post("/v1/chat/completions")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let mut record = RequestRecord::new("default".into(), &parts, Operation::ChatCompletions);
        record.route = Some("ns/r\"oute".into());
        record.request_model = Some("m".into());
        record.status = 200;
        record.attempts = 2;
        record.usage = Some(Usage {
            prompt: 3,
            completion: 4,
            total: 7,
            cached: 1,
            reasoning: 0,
        });
        record.ttft = Some(Duration::from_millis(12));
        let at = UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
        let line = json_line(&record, 1.5, at);
        assert_eq!(line.last(), Some(&b'\n'));
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(value["timestamp"], "2026-11-18T11:06:40.123456Z");
        assert_eq!(value["route"], "ns/r\"oute");
        assert_eq!(value["total_tokens"], 7);
        assert_eq!(value["attempts"], 2);
        assert_eq!(value["ttft_ms"], 12.0);
        assert_eq!(value["target"], "access");
        assert!(value.get("error").is_none());
    }

    #[test]
    fn decimals_keep_their_places() {
        let shown = |units, places| {
            let mut out = Vec::new();
            decimal(&mut out, "k", units, places);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(shown(0, 3), ",\"k\":0.000");
        assert_eq!(shown(5, 3), ",\"k\":0.005");
        assert_eq!(shown(1_500, 3), ",\"k\":1.500");
        assert_eq!(shown(12_345_678, 6), ",\"k\":12.345678");
        assert_eq!(
            shown(u64::MAX, 3),
            format!(",\"k\":{}.{}", u64::MAX / 1000, u64::MAX % 1000)
        );
    }

    #[test]
    fn client_text_is_cut_and_escaped() {
        assert!(matches!(client_text("/v1/chat"), Cow::Borrowed("/v1/chat")));
        assert_eq!(client_text("a\nb\u{1b}"), "a\\nb\\u{1b}");
        let long = "é".repeat(300);
        let cut = client_text(&long);
        assert!(cut.len() <= MAX_LOGGED_TEXT + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }
}
