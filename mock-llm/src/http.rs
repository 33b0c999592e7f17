//! Minimal HTTP/1.1 on a raw socket: enough to read keep-alive requests (Content-Length or chunked
//! bodies) and write responses, while leaving every byte on the wire under the server's control.

use std::io::{self, Write as _};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 32 * 1024 * 1024;
const MAX_HEADERS: usize = 64;
const READ_CHUNK: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    Empty,
    Length(usize),
    Chunked,
}

/// What the server needs from a request head, extracted so the read buffer can be reused.
pub(crate) struct RequestHead<R> {
    pub route: R,
    pub keep_alive: bool,
    pub body: BodyKind,
    pub expect_continue: bool,
    pub fault_spec: Option<String>,
    /// `anthropic-version`, which `/v1/messages` requires (kept even when not recording).
    pub anthropic_version: Option<String>,
    /// The target and credentials, kept (even when not recording) only for routes that check
    /// keys or read the path and query (Azure OpenAI, Gemini).
    pub provider: Option<ProviderHead>,
    /// Only filled when recording, so the fast path allocates nothing for it.
    pub full: Option<FullHead>,
}

/// Tells the head reader which routes need a [`ProviderHead`].
pub(crate) trait RouteNeeds {
    fn needs_provider_head(&self) -> bool;

    /// Whether [`ProviderHead::headers`] must hold every header (SigV4 signs any of them).
    fn needs_all_headers(&self) -> bool {
        false
    }
}

/// What key-checking provider endpoints read from the request head.
#[derive(Clone, Debug, Default)]
pub(crate) struct ProviderHead {
    /// The request target: path and query string.
    pub target: String,
    /// Azure's `api-key` header.
    pub api_key: Option<String>,
    pub authorization: Option<String>,
    /// Gemini's `x-goog-api-key` header.
    pub goog_api_key: Option<String>,
    /// `Host`, which names the URL the client addressed (an OAuth token audience).
    pub host: Option<String>,
    /// Every header in arrival order, names lower-cased; only for routes that
    /// [need them all](RouteNeeds::needs_all_headers).
    pub headers: Vec<(String, String)>,
}

impl ProviderHead {
    /// The first query parameter with this name, undecoded (`Some("")` for `?name` or `name=`).
    pub fn query(&self, name: &str) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        query
            .split('&')
            .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The path without the query string.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(p, _)| p)
    }

    /// All values of a header (name lower-case), in arrival order; only with [`Self::headers`].
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The token of an `Authorization: Bearer TOKEN` header (scheme matched case-insensitively).
    pub fn bearer(&self) -> Option<&str> {
        let auth = self.authorization.as_deref()?;
        let (scheme, token) = auth.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }
}

pub(crate) struct FullHead {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug)]
pub(crate) enum ReadError {
    Io(io::Error),
    /// The peer sent something we cannot parse; answer 400 and close.
    Malformed(&'static str),
    TooLarge,
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// One client connection with its reusable read and write buffers.
pub(crate) struct Conn {
    pub stream: TcpStream,
    rbuf: BytesMut,
    pub out: Vec<u8>,
    /// Where response bodies are serialized before their length goes into `out`.
    pub scratch: Vec<u8>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            out: Vec::with_capacity(4096),
            scratch: Vec::with_capacity(4096),
        }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
        self.stream.read_buf(&mut self.rbuf).await
    }

    /// Reads the next request head; `Ok(None)` when the peer closed cleanly between requests.
    pub async fn read_head<R: RouteNeeds>(
        &mut self,
        record: bool,
        classify: impl Fn(Method, &str) -> R,
    ) -> Result<Option<RequestHead<R>>, ReadError> {
        loop {
            if !self.rbuf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(&self.rbuf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let head = extract(&req, record, &classify)?;
                        self.rbuf.advance(n);
                        return Ok(Some(head));
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::TooManyHeaders) => return Err(ReadError::TooLarge),
                    Err(_) => return Err(ReadError::Malformed("malformed request head")),
                }
                if self.rbuf.len() > MAX_HEAD {
                    return Err(ReadError::TooLarge);
                }
            }
            if self.fill().await? == 0 {
                if self.rbuf.is_empty() {
                    return Ok(None);
                }
                return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    pub async fn read_body(&mut self, kind: BodyKind) -> Result<Bytes, ReadError> {
        match kind {
            BodyKind::Empty => Ok(Bytes::new()),
            BodyKind::Length(len) => {
                self.fill_to(len).await?;
                Ok(self.rbuf.split_to(len).freeze())
            }
            BodyKind::Chunked => self.read_chunked().await,
        }
    }

    async fn fill_to(&mut self, len: usize) -> Result<(), ReadError> {
        if len > self.rbuf.len() {
            self.rbuf.reserve(len - self.rbuf.len());
        }
        while self.rbuf.len() < len {
            if self.fill().await? == 0 {
                return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
        }
        Ok(())
    }

    async fn read_chunked(&mut self) -> Result<Bytes, ReadError> {
        let mut body = BytesMut::new();
        loop {
            let (consumed, size) = loop {
                match httparse::parse_chunk_size(&self.rbuf) {
                    Ok(httparse::Status::Complete(v)) => break v,
                    Ok(httparse::Status::Partial) => self.fill_to(self.rbuf.len() + 1).await?,
                    Err(_) => return Err(ReadError::Malformed("invalid chunk size")),
                }
            };
            self.rbuf.advance(consumed);
            let size = usize::try_from(size).map_err(|_| ReadError::TooLarge)?;
            if size == 0 {
                self.skip_trailers().await?;
                return Ok(body.freeze());
            }
            if body.len() + size > MAX_BODY {
                return Err(ReadError::TooLarge);
            }
            self.fill_to(size + 2).await?;
            body.extend_from_slice(&self.rbuf[..size]);
            if &self.rbuf[size..size + 2] != b"\r\n" {
                return Err(ReadError::Malformed("chunk not terminated by CRLF"));
            }
            self.rbuf.advance(size + 2);
        }
    }

    /// Trailer fields are ignored; only the blank line ending them matters.
    async fn skip_trailers(&mut self) -> Result<(), ReadError> {
        loop {
            match memchr::memmem::find(&self.rbuf, b"\r\n") {
                Some(0) => {
                    self.rbuf.advance(2);
                    return Ok(());
                }
                Some(i) => self.rbuf.advance(i + 2),
                None if self.rbuf.len() > MAX_HEAD => return Err(ReadError::TooLarge),
                None => self.fill_to(self.rbuf.len() + 1).await?,
            }
        }
    }

    /// Waits until the peer closes (or errors), discarding anything it sends.
    pub async fn drain_until_closed(&mut self) {
        loop {
            self.rbuf.clear();
            match self.fill().await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Writes `self.out` to the socket and clears it.
    pub async fn flush_out(&mut self) -> io::Result<()> {
        let res = self.stream.write_all(&self.out).await;
        self.out.clear();
        res
    }
}

fn extract<R: RouteNeeds>(
    req: &httparse::Request<'_, '_>,
    record: bool,
    classify: &impl Fn(Method, &str) -> R,
) -> Result<RequestHead<R>, ReadError> {
    let method_str = req.method.unwrap_or("");
    let path = req.path.unwrap_or("/");
    let method = match method_str {
        "GET" => Method::Get,
        "POST" => Method::Post,
        _ => Method::Other,
    };
    let http10 = req.version == Some(0);
    let mut keep_alive = !http10;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut expect_continue = false;
    let mut fault_spec = None;
    let mut anthropic_version = None;
    let route_path = path.split_once('?').map_or(path, |(p, _)| p);
    let route = classify(method, route_path);
    let mut provider = route.needs_provider_head().then(|| ProviderHead {
        target: path.to_owned(),
        ..ProviderHead::default()
    });
    let all_headers = route.needs_all_headers();
    for h in req.headers.iter() {
        let name = h.name;
        if all_headers && let Some(p) = provider.as_mut() {
            let value = String::from_utf8_lossy(h.value).into_owned();
            p.headers.push((name.to_ascii_lowercase(), value));
        }
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(ReadError::Malformed("invalid content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(ReadError::Malformed("conflicting content-length"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = last_token(h.value).eq_ignore_ascii_case(b"chunked");
            if !chunked {
                return Err(ReadError::Malformed("unsupported transfer-encoding"));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("x-mock-fault") {
            fault_spec = Some(String::from_utf8_lossy(h.value).into_owned());
        } else if name.eq_ignore_ascii_case("anthropic-version") {
            anthropic_version = Some(String::from_utf8_lossy(h.value).trim().to_owned());
        } else if let Some(p) = provider.as_mut() {
            let slot = if name.eq_ignore_ascii_case("api-key") {
                &mut p.api_key
            } else if name.eq_ignore_ascii_case("authorization") {
                &mut p.authorization
            } else if name.eq_ignore_ascii_case("x-goog-api-key") {
                &mut p.goog_api_key
            } else if name.eq_ignore_ascii_case("host") {
                &mut p.host
            } else {
                continue;
            };
            if slot.is_none() {
                *slot = Some(String::from_utf8_lossy(h.value).trim().to_owned());
            }
        }
    }
    // Chunked wins over Content-Length (RFC 9112 §6.3).
    let body = match (chunked, length) {
        (true, _) => BodyKind::Chunked,
        (false, Some(n)) if n > MAX_BODY => return Err(ReadError::TooLarge),
        (false, Some(n)) if n > 0 => BodyKind::Length(n),
        _ => BodyKind::Empty,
    };
    let full = record.then(|| FullHead {
        method: method_str.to_owned(),
        path: path.to_owned(),
        headers: req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
    });
    Ok(RequestHead {
        route,
        keep_alive,
        body,
        expect_continue,
        fault_spec,
        anthropic_version,
        provider,
        full,
    })
}

fn last_token(value: &[u8]) -> &[u8] {
    value
        .rsplit(|&b| b == b',')
        .next()
        .unwrap_or(value)
        .trim_ascii()
}

/// Appends a status line and headers. `content_length: None` means a chunked body.
pub(crate) fn write_head(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    content_length: Option<usize>,
    close: bool,
    extra: &[u8],
) {
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\n",
        reason(status)
    );
    match content_length {
        Some(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        None => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(extra);
    out.extend_from_slice(b"\r\n");
}

/// Appends one chunk of a chunked body; empty `data` would end the body, so callers never pass it.
pub(crate) fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Site Overloaded",
        _ => "Unknown",
    }
}
