//! Fault injection: the Rust representation, the string spec used by the `x-mock-fault` header and
//! the `--fault` flag, and the flattened plan the server executes.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

/// Something to do wrong instead of (or on top of) answering normally.
///
/// `Fault::All` combines faults; later entries override earlier ones, so `All([Reset, Stall])`
/// stalls. The spec parser rejects such conflicts instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and an error body in the endpoint's style (OpenAI's, with
    /// `param: null` on `/v1/responses`, Anthropic's `{"type":"error","error":{..}}` on
    /// `/v1/messages` (and `count_tokens`) and Claude on Vertex AI, Azure's
    /// `{"error":{"code":"429",..}}` under `/openai/`, Google's
    /// `{"error":{"code":429,..,"status":"RESOURCE_EXHAUSTED"}}` on Gemini and other Vertex AI
    /// routes, Bedrock's `{"message":..}` with `x-amzn-errortype: ThrottlingException:..` under
    /// `/model/`, OAuth's `{"error":..,"error_description":..}` on `/token`).
    Status {
        status: u16,
        /// Sent verbatim as `Retry-After`, so both delta-seconds and an HTTP-date work.
        retry_after: Option<String>,
        /// Overrides the error body's `type` and `code` (e.g. `insufficient_quota`, or
        /// `overloaded_error` on `/v1/messages`); Azure's `code`; Gemini's `status` when
        /// upper-case (e.g. `FAILED_PRECONDITION`); Bedrock's exception (e.g.
        /// `ModelNotReadyException`); OAuth's `error`.
        error_type: Option<String>,
    },
    /// Read the request, then close the socket with a RST and no response.
    Reset,
    /// Streaming: send the headers and the first N SSE events, then close without the final
    /// zero-length chunk. Non-streaming: send the headers and half of the body, then close.
    CutAfter(usize),
    /// Read the request and never answer until the client goes away.
    Stall,
    /// Streaming: send the first N events, then an error event in the endpoint's style
    /// (Anthropic: `event: error` with an `overloaded_error`; OpenAI and Azure: `data: {"error":
    /// ..}`; the Responses API: `event: error` with `{"type":"error","code":"server_error",..,
    /// "sequence_number":N}`; Gemini: `data: {"error":{"code":503,..,"status":"UNAVAILABLE"}}`, or a last array
    /// element without `alt=sse`; Bedrock: an event-stream message with `:message-type`
    /// `exception` and `:exception-type` `internalServerException`) and end the stream cleanly.
    /// N is clamped so the error at least replaces the stream's terminal event (`message_stop` /
    /// `[DONE]` / `response.completed` / `metadata`). Non-streaming responses are unaffected.
    ErrorAfter(usize),
    /// Wait before the response headers.
    Delay(Duration),
    /// Wait between SSE events (overrides the instance's `chunk_delay`).
    ChunkDelay(Duration),
    /// Several faults at once, e.g. a delay followed by a status.
    All(Vec<Fault>),
}

impl Fault {
    /// A status fault with the default error body for that status.
    pub fn status(status: u16) -> Fault {
        Fault::Status {
            status,
            retry_after: None,
            error_type: None,
        }
    }

    pub fn delay(delay: Duration) -> Fault {
        Fault::Delay(delay)
    }

    pub fn chunk_delay(delay: Duration) -> Fault {
        Fault::ChunkDelay(delay)
    }

    /// Sets `Retry-After` on the status fault(s) inside; no effect on other faults.
    pub fn with_retry_after(self, value: impl Into<String>) -> Fault {
        let value = value.into();
        self.map_status(&mut |retry_after, _| *retry_after = Some(value.clone()))
    }

    /// Sets the error body's `type`/`code` on the status fault(s) inside.
    pub fn with_error_type(self, error_type: impl Into<String>) -> Fault {
        let error_type = error_type.into();
        self.map_status(&mut |_, ty| *ty = Some(error_type.clone()))
    }

    /// Combines two faults; `other` wins where they conflict.
    pub fn and(self, other: Fault) -> Fault {
        let mut all = match self {
            Fault::All(v) => v,
            f => vec![f],
        };
        all.push(other);
        Fault::All(all)
    }

    fn map_status(self, f: &mut dyn FnMut(&mut Option<String>, &mut Option<String>)) -> Fault {
        match self {
            Fault::Status {
                status,
                mut retry_after,
                mut error_type,
            } => {
                f(&mut retry_after, &mut error_type);
                Fault::Status {
                    status,
                    retry_after,
                    error_type,
                }
            }
            Fault::All(v) => Fault::All(v.into_iter().map(|x| x.map_status(f)).collect()),
            other => other,
        }
    }

    /// Flattens into what the server executes.
    pub(crate) fn plan(&self) -> FaultPlan<'_> {
        let mut plan = FaultPlan::default();
        self.fill(&mut plan);
        plan
    }

    fn fill<'a>(&'a self, plan: &mut FaultPlan<'a>) {
        match self {
            Fault::Status {
                status,
                retry_after,
                error_type,
            } => {
                plan.action = Some(Action::Status {
                    status: *status,
                    retry_after: retry_after.as_deref(),
                    error_type: error_type.as_deref(),
                })
            }
            Fault::Reset => plan.action = Some(Action::Reset),
            Fault::CutAfter(n) => plan.action = Some(Action::CutAfter(*n)),
            Fault::Stall => plan.action = Some(Action::Stall),
            Fault::ErrorAfter(n) => plan.action = Some(Action::ErrorAfter(*n)),
            Fault::Delay(d) => plan.delay = Some(*d),
            Fault::ChunkDelay(d) => plan.chunk_delay = Some(*d),
            Fault::All(v) => v.iter().for_each(|f| f.fill(plan)),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FaultPlan<'a> {
    pub delay: Option<Duration>,
    pub chunk_delay: Option<Duration>,
    pub action: Option<Action<'a>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action<'a> {
    Status {
        status: u16,
        retry_after: Option<&'a str>,
        error_type: Option<&'a str>,
    },
    Reset,
    CutAfter(usize),
    Stall,
    ErrorAfter(usize),
}

/// Why a fault spec did not parse.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum FaultParseError {
    #[error("empty fault spec")]
    Empty,
    #[error("unknown fault `{0}`")]
    UnknownKey(String),
    #[error("`{0}` needs a value (`{0}=...`)")]
    MissingValue(String),
    #[error("`{0}` takes no value")]
    UnexpectedValue(String),
    #[error("invalid value `{value}` for `{key}`")]
    InvalidValue { key: String, value: String },
    #[error("`{0}` is given more than once")]
    Duplicate(String),
    #[error("`{0}` only makes sense together with `status=`")]
    NeedsStatus(&'static str),
    #[error(
        "`{0}` and `{1}` conflict: use only one of status, reset, cut-after, error-after, stall"
    )]
    Conflict(String, String),
}

impl FromStr for Fault {
    type Err = FaultParseError;

    /// Grammar: `part (';' part)*` with parts `status=N`, `retry-after=V`, `body=TYPE`,
    /// `delay-ms=N`, `chunk-delay-ms=N`, `cut-after=N`, `error-after=N`, `reset`, `stall`.
    fn from_str(spec: &str) -> Result<Fault, FaultParseError> {
        let mut status: Option<u16> = None;
        let mut retry_after: Option<String> = None;
        let mut error_type: Option<String> = None;
        let mut delay = None;
        let mut chunk_delay = None;
        // The action-ish part and the key that set it, to report conflicts by name.
        let mut action: Option<(Fault, &str)> = None;

        for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (part, None),
            };
            let need = |v: Option<&str>| match v {
                Some(v) if !v.is_empty() => Ok(v.to_owned()),
                _ => Err(FaultParseError::MissingValue(key.to_owned())),
            };
            let number = |v: Option<&str>| -> Result<u64, FaultParseError> {
                let v = need(v)?;
                v.parse().map_err(|_| FaultParseError::InvalidValue {
                    key: key.to_owned(),
                    value: v,
                })
            };
            let no_value = || match value {
                Some(_) => Err(FaultParseError::UnexpectedValue(key.to_owned())),
                None => Ok(()),
            };
            let new_action = match key {
                "status" => {
                    let n = number(value)?;
                    let s = u16::try_from(n).ok().filter(|s| (200..=599).contains(s));
                    let s = s.ok_or_else(|| FaultParseError::InvalidValue {
                        key: key.to_owned(),
                        value: n.to_string(),
                    })?;
                    status = Some(s);
                    Some(Fault::status(s))
                }
                "retry-after" => set_once(&mut retry_after, need(value)?, key).map(|_| None)?,
                "body" => {
                    let v = need(value)?;
                    if !v
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
                    {
                        return Err(FaultParseError::InvalidValue {
                            key: key.to_owned(),
                            value: v,
                        });
                    }
                    set_once(&mut error_type, v, key).map(|_| None)?
                }
                "delay-ms" => set_once(&mut delay, number(value)?, key).map(|_| None)?,
                "chunk-delay-ms" => {
                    set_once(&mut chunk_delay, number(value)?, key).map(|_| None)?
                }
                "cut-after" => Some(Fault::CutAfter(number(value)? as usize)),
                "error-after" => Some(Fault::ErrorAfter(number(value)? as usize)),
                "reset" => no_value().map(|_| Some(Fault::Reset))?,
                "stall" => no_value().map(|_| Some(Fault::Stall))?,
                _ => return Err(FaultParseError::UnknownKey(key.to_owned())),
            };
            if let Some(fault) = new_action {
                if let Some((_, prev)) = &action {
                    return Err(FaultParseError::Conflict(prev.to_string(), key.to_owned()));
                }
                action = Some((fault, key));
            }
        }

        if status.is_none() {
            if retry_after.is_some() {
                return Err(FaultParseError::NeedsStatus("retry-after"));
            }
            if error_type.is_some() {
                return Err(FaultParseError::NeedsStatus("body"));
            }
        }
        let mut parts = Vec::new();
        parts.extend(delay.map(|ms| Fault::Delay(Duration::from_millis(ms))));
        parts.extend(chunk_delay.map(|ms| Fault::ChunkDelay(Duration::from_millis(ms))));
        if let Some((fault, _)) = action {
            let fault = match fault {
                Fault::Status { status, .. } => Fault::Status {
                    status,
                    retry_after,
                    error_type,
                },
                other => other,
            };
            parts.push(fault);
        }
        match parts.len() {
            0 => Err(FaultParseError::Empty),
            1 => Ok(parts.remove(0)),
            _ => Ok(Fault::All(parts)),
        }
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, key: &str) -> Result<(), FaultParseError> {
    if slot.replace(value).is_some() {
        return Err(FaultParseError::Duplicate(key.to_owned()));
    }
    Ok(())
}

/// Writes the spec form, so `fault.to_string()` can be sent as an `x-mock-fault` header.
impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Status {
                status,
                retry_after,
                error_type,
            } => {
                write!(f, "status={status}")?;
                if let Some(v) = retry_after {
                    write!(f, ";retry-after={v}")?;
                }
                if let Some(v) = error_type {
                    write!(f, ";body={v}")?;
                }
                Ok(())
            }
            Fault::Reset => f.write_str("reset"),
            Fault::CutAfter(n) => write!(f, "cut-after={n}"),
            Fault::ErrorAfter(n) => write!(f, "error-after={n}"),
            Fault::Stall => f.write_str("stall"),
            Fault::Delay(d) => write!(f, "delay-ms={}", d.as_millis()),
            Fault::ChunkDelay(d) => write!(f, "chunk-delay-ms={}", d.as_millis()),
            Fault::All(v) => {
                for (i, fault) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(";")?;
                    }
                    fault.fmt(f)?;
                }
                Ok(())
            }
        }
    }
}
