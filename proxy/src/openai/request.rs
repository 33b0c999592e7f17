//! Request bodies: parsed once, spliced per attempt with the chosen provider's model.
//!
//! Only the top level is read, borrowing from the client's bytes: the parse records where the
//! `model` value sits and where the object closes, and an attempt's body is the client's bytes
//! around a new model value (and `stream_options` when the proxy asks for usage), as slices of the
//! one buffer. So a request holds one copy of its body however many attempts it takes, and every
//! byte but the fields we touch is sent exactly as the client wrote it.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::error::ProxyError;
use crate::upstream_body::UpstreamBody;

/// The longest `model` a client may send (DESIGN: `400 invalid_model` above).
pub const MAX_MODEL_BYTES: usize = agentgateway_crds::validation::MAX_MODEL_LEN;

/// A JSON request body with the positions of the fields the proxy rewrites.
#[derive(Debug)]
pub struct JsonRequest {
    body: Bytes,
    /// The byte range of the `model` value, when the client sent one.
    model_value: Option<Range<usize>>,
    /// Offset of the object's opening and closing braces.
    open: usize,
    close: usize,
    /// The object has no field at all.
    empty: bool,
    /// The client's `model`, when it is a non-empty string.
    pub model: Option<String>,
    /// `"stream": true`.
    pub stream: bool,
    /// Whether the client set `stream_options` itself.
    pub has_stream_options: bool,
    /// The most output tokens the client asked for (`max_tokens`, `max_completion_tokens` or
    /// `max_output_tokens`, the largest when several are set): what a token rate limit reserves.
    pub max_output_tokens: Option<u64>,
}

/// The top-level fields the proxy reads, borrowed from the body.
#[derive(Default)]
struct TopLevel<'a> {
    model: Option<&'a RawValue>,
    stream: Option<&'a RawValue>,
    stream_options: bool,
    max_output_tokens: Option<u64>,
    fields: usize,
}

impl<'de> serde::Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = TopLevel<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut top = TopLevel::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    top.fields += 1;
                    let slot = match key.as_ref() {
                        "model" => &mut top.model,
                        "stream" => &mut top.stream,
                        "stream_options" if top.stream_options => {
                            return Err(de::Error::custom("duplicate field `stream_options`"));
                        }
                        "stream_options" => {
                            top.stream_options = true;
                            continue;
                        }
                        "max_tokens" | "max_completion_tokens" | "max_output_tokens" => {
                            // Not a number: the provider says so; the estimate does without.
                            if let Ok(n) = value.get().trim().parse::<u64>() {
                                top.max_output_tokens = top.max_output_tokens.max(Some(n));
                            }
                            continue;
                        }
                        _ => continue,
                    };
                    // A second copy could be read by the provider instead of the one rewritten.
                    if slot.replace(value).is_some() {
                        return Err(de::Error::custom(format!("duplicate field `{key}`")));
                    }
                }
                Ok(top)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

impl JsonRequest {
    /// Parses a body that must be a JSON object with a valid `model` (a string of at most
    /// [`MAX_MODEL_BYTES`] bytes without control characters, or null or absent).
    pub fn parse(body: Bytes) -> Result<Self, ProxyError> {
        let top: TopLevel<'_> = serde_json::from_slice(&body).map_err(|e| {
            ProxyError::bad_request(
                "invalid_json",
                format!("the request body is not a valid JSON object: {e}"),
            )
        })?;
        let offset = |raw: &RawValue| raw.get().as_ptr() as usize - body.as_ptr() as usize;
        let model_value = top.model.map(|raw| {
            let start = offset(raw);
            start..start + raw.get().len()
        });
        let model = match top.model {
            None => None,
            Some(raw) => parse_model(raw.get())?,
        };
        let stream = top.stream.is_some_and(|raw| raw.get().trim() == "true");
        let has_stream_options = top.stream_options;
        let max_output_tokens = top.max_output_tokens;
        let fields = top.fields;
        // serde_json accepted an object: its first and last non-space bytes are the braces.
        let open = body
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or_default();
        let close = body
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .unwrap_or_default();
        Ok(Self {
            model_value,
            open,
            close,
            empty: fields == 0,
            model,
            stream,
            has_stream_options,
            max_output_tokens,
            body,
        })
    }

    /// The model sent upstream: the provider's when it has one, else the client's.
    pub fn effective_model<'a>(&'a self, provider_model: Option<&'a str>) -> Option<&'a str> {
        provider_model.or(self.model.as_deref())
    }

    /// Whether the proxy adds `stream_options.include_usage` (a stream whose client did not ask).
    pub fn injects_usage(&self) -> bool {
        self.stream && !self.has_stream_options
    }

    /// The body for one attempt: `model` set to `model`, and `stream_options` added when
    /// injecting usage; slices of the client's bytes around the new values.
    pub fn encode(&self, model: &str, inject_usage: bool) -> UpstreamBody {
        let model_json = Bytes::from(json_string(model));
        let mut parts = Vec::with_capacity(5);
        match &self.model_value {
            Some(range) => {
                parts.push(self.body.slice(..range.start));
                parts.push(model_json);
                parts.push(self.body.slice(range.end..self.close));
            }
            None => {
                let mut field = b"\"model\":".to_vec();
                field.extend_from_slice(&model_json);
                if !self.empty {
                    field.push(b',');
                }
                parts.push(self.body.slice(..=self.open));
                parts.push(Bytes::from(field));
                parts.push(self.body.slice(self.open + 1..self.close));
            }
        }
        if inject_usage {
            parts.push(Bytes::from_static(
                b",\"stream_options\":{\"include_usage\":true}",
            ));
        }
        parts.push(self.body.slice(self.close..));
        UpstreamBody::chunks(parts)
    }

    /// The client's bytes, unchanged.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

/// The client's model: `None` for null or empty; an error for anything but a valid string.
fn parse_model(raw: &str) -> Result<Option<String>, ProxyError> {
    let invalid = |why: &str| ProxyError::bad_request("invalid_model", format!("`model` {why}"));
    let model: Option<String> =
        serde_json::from_str(raw).map_err(|_| invalid("must be a string"))?;
    let Some(model) = model.filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    if model.len() > MAX_MODEL_BYTES {
        return Err(invalid(&format!(
            "must be at most {MAX_MODEL_BYTES} bytes long"
        )));
    }
    if model.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(Some(model))
}

fn json_string(s: &str) -> Vec<u8> {
    // Serializing a &str cannot fail.
    serde_json::to_vec(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &UpstreamBody) -> serde_json::Value {
        serde_json::from_slice(&body.to_vec()).unwrap()
    }

    fn parse(body: &[u8]) -> Result<JsonRequest, ProxyError> {
        JsonRequest::parse(Bytes::copy_from_slice(body))
    }

    #[test]
    fn provider_model_replaces_an_empty_request_model() {
        let req = parse(br#"{"model":"","messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(req.model, None);
        let model = req.effective_model(Some("gemma")).unwrap();
        let body = req.encode(model, false);
        assert_eq!(json(&body)["model"], "gemma");
        assert_eq!(json(&body)["messages"][0]["content"], "hi");
    }

    #[test]
    fn request_model_is_kept_without_a_provider_model() {
        let req = parse(br#"{"model":"gpt-4o","messages":[]}"#).unwrap();
        assert_eq!(req.effective_model(None), Some("gpt-4o"));
    }

    #[test]
    fn absent_model_is_added_when_the_provider_has_one() {
        let req = parse(br#"{"messages":[]}"#).unwrap();
        let body = req.encode("m", false);
        assert_eq!(json(&body)["model"], "m");
    }

    #[test]
    fn usage_is_injected_only_into_streams_without_stream_options() {
        let req = parse(br#"{"model":"m","stream":true}"#).unwrap();
        assert!(req.injects_usage());
        let body = req.encode("m", true);
        assert_eq!(json(&body)["stream_options"]["include_usage"], true);
        let req = parse(br#"{"model":"m","stream":true,"stream_options":{"include_usage":false}}"#)
            .unwrap();
        assert!(!req.injects_usage());
        let req = parse(br#"{"model":"m","stream":false}"#).unwrap();
        assert!(!req.injects_usage());
    }

    #[test]
    fn invalid_bodies_are_rejected_with_400() {
        for bad in [
            &b"not json"[..],
            b"[1,2]",
            b"{\"model\":",
            b"{\"model\":3}",
            b"",
            b"{\"model\":\"a\",\"model\":\"b\"}",
            b"{\"stream\":false,\"stream\":true}",
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn unusual_keys_and_values_survive_the_rewrite() {
        let req = parse(br#"{"model":"a","x\"y":"\u00e9\n","n":1.5e3,"nested":{"model":"keep"}}"#)
            .unwrap();
        let out = json(&req.encode("b", false));
        assert_eq!(out["x\"y"], "é\n");
        assert_eq!(out["n"], 1500.0);
        assert_eq!(out["nested"]["model"], "keep");
        assert_eq!(out["model"], "b");
    }

    #[test]
    fn models_that_are_too_long_or_hold_control_characters_are_invalid_model() {
        let long = format!("{{\"model\":\"{}\"}}", "m".repeat(MAX_MODEL_BYTES + 1));
        let ok = format!("{{\"model\":\"{}\"}}", "m".repeat(MAX_MODEL_BYTES));
        assert!(parse(ok.as_bytes()).is_ok());
        for bad in [
            long.as_str(),
            r#"{"model":"x\"} 1\nforged 0"}"#,
            r#"{"model":"a\u0000b"}"#,
            r#"{"model":"a\u001bb"}"#,
        ] {
            let err = parse(bad.as_bytes()).unwrap_err();
            assert_eq!(err.code, "invalid_model", "{bad}");
        }
    }

    #[test]
    fn the_rewrite_is_spliced_around_the_clients_bytes() {
        let raw = br#" { "messages" : [ 1 ] , "model" : "a" , "z" : true } "#;
        let req = parse(raw).unwrap();
        let body = req.encode("b", true);
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(
            text,
            r#" { "messages" : [ 1 ] , "model" : "b" , "z" : true ,"stream_options":{"include_usage":true}} "#
        );
        assert_eq!(body.len(), text.len() as u64);
        let empty = parse(b"{}").unwrap();
        assert_eq!(
            String::from_utf8(empty.encode("m", false).to_vec()).unwrap(),
            r#"{"model":"m"}"#
        );
    }
}
