//! A deliberately small raw HTTP/1.1 client, so the tests see exactly what the server put on the
//! wire (including cut streams and resets) without a client library papering over it.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const TIMEOUT: Duration = Duration::from_secs(5);

pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// For chunked responses: each chunk's payload, in order.
    pub chunks: Vec<Vec<u8>>,
    /// False when the connection ended before the body did (missing bytes or final 0-chunk).
    pub complete: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("response body is JSON")
    }

    /// The payloads of `data:` lines, in order.
    pub fn sse_data(&self) -> Vec<String> {
        let text = std::str::from_utf8(&self.body).expect("utf-8 body");
        text.split("\n\n")
            .filter_map(|event| event.strip_prefix("data: "))
            .map(str::to_owned)
            .collect()
    }

    /// Named SSE events (`event: NAME\ndata: JSON`), as Anthropic streams them.
    pub fn sse_events(&self) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(&self.body).expect("utf-8 body");
        text.split_terminator("\n\n")
            .map(|event| {
                let (name, data) = event
                    .strip_prefix("event: ")
                    .and_then(|e| e.split_once("\ndata: "))
                    .unwrap_or_else(|| panic!("not a named SSE event: {event:?}"));
                let data = serde_json::from_str(data).expect("SSE data is JSON");
                (name.to_owned(), data)
            })
            .collect()
    }

    /// Gemini's SSE events (`data: JSON\r\n\r\n`, CRLF framing), as JSON.
    pub fn sse_crlf_json(&self) -> Vec<Value> {
        let text = std::str::from_utf8(&self.body).expect("utf-8 body");
        text.split_terminator("\r\n\r\n")
            .map(|event| {
                let data = event
                    .strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("not a data event: {event:?}"));
                assert!(!data.contains('\n'), "one data line per event: {event:?}");
                serde_json::from_str(data).expect("SSE data is JSON")
            })
            .collect()
    }

    /// The `data:` payloads as JSON, stopping before `[DONE]`.
    pub fn sse_json(&self) -> Vec<Value> {
        self.sse_data()
            .iter()
            .take_while(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).expect("SSE data is JSON"))
            .collect()
    }
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    pub async fn post(
        &mut self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> io::Result<Response> {
        let body = serde_json::to_vec(body).expect("serialize");
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: mock\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(&body);
        self.send_raw(&bytes).await?;
        self.read_response().await
    }

    /// POSTs `body` verbatim (tests that sign requests need the exact bytes) with `Host: mock`.
    pub async fn post_bytes(
        &mut self,
        path: &str,
        content_type: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> io::Result<Response> {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: mock\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.send_raw(&bytes).await?;
        self.read_response().await
    }

    pub async fn get(&mut self, path: &str) -> io::Result<Response> {
        self.send_raw(format!("GET {path} HTTP/1.1\r\nHost: mock\r\n\r\n").as_bytes())
            .await?;
        self.read_response().await
    }

    /// Reads more bytes; errors on EOF so callers can tell a cut from a complete message.
    async fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(TIMEOUT, self.stream.read(&mut chunk))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "read timed out"))??;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    pub async fn read_response(&mut self) -> io::Result<Response> {
        let (status, headers, head_len) = loop {
            let mut hs = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut hs);
            if let httparse::Status::Complete(n) =
                resp.parse(&self.buf).expect("valid response head")
            {
                let headers = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect::<Vec<_>>();
                break (resp.code.expect("status"), headers, n);
            }
            self.fill().await?;
        };
        self.buf.drain(..head_len);
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
            chunks: Vec::new(),
            complete: false,
        };
        if status == 100 {
            return Box::pin(self.read_response()).await;
        }
        if response.header("transfer-encoding") == Some("chunked") {
            self.read_chunked(&mut response).await;
        } else {
            let len: usize = response
                .header("content-length")
                .map_or(0, |v| v.parse().expect("length"));
            while self.buf.len() < len {
                if self.fill().await.is_err() {
                    response.body = std::mem::take(&mut self.buf);
                    return Ok(response);
                }
            }
            response.body = self.buf.drain(..len).collect();
            response.complete = true;
        }
        Ok(response)
    }

    async fn read_chunked(&mut self, response: &mut Response) {
        loop {
            let line_end = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                if self.fill().await.is_err() {
                    return;
                }
            };
            let size_text = std::str::from_utf8(&self.buf[..line_end]).expect("chunk size");
            let size = usize::from_str_radix(size_text.trim(), 16).expect("hex chunk size");
            while self.buf.len() < line_end + 2 + size + 2 {
                if self.fill().await.is_err() {
                    return;
                }
            }
            let data: Vec<u8> = self.buf[line_end + 2..line_end + 2 + size].to_vec();
            assert_eq!(&self.buf[line_end + 2 + size..line_end + 4 + size], b"\r\n");
            self.buf.drain(..line_end + 4 + size);
            if size == 0 {
                response.complete = true;
                return;
            }
            response.body.extend_from_slice(&data);
            response.chunks.push(data);
        }
    }

    /// True when the server closed (or reset) the connection without sending anything more.
    pub async fn closed_without_data(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(TIMEOUT, self.stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => self.buf.is_empty(),
            Ok(Ok(_)) | Err(_) => false,
        }
    }
}

pub fn chat(content: &str) -> Value {
    serde_json::json!({"model": "gpt-test", "messages": [{"role": "user", "content": content}]})
}

pub fn chat_stream(content: &str, include_usage: bool) -> Value {
    serde_json::json!({
        "model": "gpt-test",
        "messages": [{"role": "user", "content": content}],
        "stream": true,
        "stream_options": {"include_usage": include_usage},
    })
}

/// Headers every Messages API request needs.
pub const ANTHROPIC: [(&str, &str); 1] = [("anthropic-version", "2023-06-01")];

pub fn message(content: &str) -> Value {
    serde_json::json!({
        "model": "claude-test",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": content}],
    })
}

/// An Azure OpenAI chat route with a GA `api-version`.
pub const AZURE_CHAT: &str =
    "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21";

/// The key header Azure OpenAI checks.
pub const AZURE_KEY: [(&str, &str); 1] = [("api-key", "azure-test-key")];

/// Gemini's non-streaming route for `gemini-test`.
pub const GEMINI: &str = "/v1beta/models/gemini-test:generateContent";

/// Gemini's SSE streaming route for `gemini-test`.
pub const GEMINI_SSE: &str = "/v1beta/models/gemini-test:streamGenerateContent?alt=sse";

/// The key header Gemini checks.
pub const GEMINI_KEY: [(&str, &str); 1] = [("x-goog-api-key", "AIza-test-key")];

/// A one-turn Gemini request.
pub fn gemini(text: &str) -> Value {
    serde_json::json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

/// One message of an AWS event stream, with its string headers.
#[derive(Debug)]
pub struct Frame {
    pub headers: Vec<(String, String)>,
    pub payload: Value,
}

impl Frame {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `:event-type` (or `:exception-type` for an exception).
    pub fn kind(&self) -> &str {
        self.header(":event-type")
            .or_else(|| self.header(":exception-type"))
            .expect("an event or exception type")
    }
}

/// Decodes a whole `application/vnd.amazon.eventstream` body with the AWS SDK's decoder; panics
/// on trailing bytes or a frame that does not decode (CRC mismatch included).
pub fn event_stream(body: &[u8]) -> Vec<Frame> {
    use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
    let mut buf = bytes::Bytes::copy_from_slice(body);
    let mut decoder = MessageFrameDecoder::new();
    let mut frames = Vec::new();
    while !buf.is_empty() {
        match decoder
            .decode_frame(&mut buf)
            .expect("a valid event-stream frame")
        {
            DecodedFrame::Complete(message) => {
                let headers = message
                    .headers()
                    .iter()
                    .map(|h| {
                        let value = h.value().as_string().expect("string header");
                        (h.name().as_str().to_owned(), value.as_str().to_owned())
                    })
                    .collect();
                let payload = serde_json::from_slice(message.payload()).expect("JSON payload");
                frames.push(Frame { headers, payload });
            }
            DecodedFrame::Incomplete => panic!("the stream ends inside a frame"),
        }
    }
    frames
}

/// Bedrock's Converse route for a model id, percent-encoded as the AWS SDK encodes it.
pub fn bedrock_path(model_id: &str, operation: &str) -> String {
    let encoded: String = model_id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("/model/{encoded}/{operation}")
}

/// A one-turn Converse request.
pub fn converse(text: &str) -> Value {
    serde_json::json!({"messages": [{"role": "user", "content": [{"text": text}]}]})
}
