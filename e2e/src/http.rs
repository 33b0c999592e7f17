//! A small HTTP/1.1 client for the proxy and the model servers.

use super::*;

/// A response read by [`http`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        body = &body[eol + 2..];
        if size == 0 || body.len() < size {
            out.extend_from_slice(&body[..size.min(body.len())]);
            break;
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
    out
}

/// A minimal HTTP/1.1 client (one request per connection) for `127.0.0.1:port`.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> io::Result<HttpResponse> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let host = format!("localhost:{port}");
    http_to(addr, &host, method, path, body, timeout)
}

/// [`http`] to any address (from a thread in the cluster's netns: a pod IP or a Service ClusterIP),
/// with `host` as the Host header.
pub fn http_to(
    addr: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> io::Result<HttpResponse> {
    http_with(addr, host, method, path, body, &[], timeout)
}

/// [`http_to`] with extra request headers (`name`, `value`).
pub fn http_with(
    addr: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> io::Result<HttpResponse> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
         {extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    // Read until the message is complete (Content-Length, or the last chunk), not until EOF:
    // `kubectl port-forward` closes the local side of a connection up to a second after the pod's
    // side closed it, which would add that second to every latency measured.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let mut head: Option<Head> = None;
    loop {
        if head.is_none()
            && let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n")
        {
            head = Some(parse_head(&raw[..split])?);
            if let Some((_, status, _)) = &head
                && (*status == 204 || *status == 304 || method == "HEAD")
            {
                break;
            }
        }
        if let Some((split, _, headers)) = &head
            && message_complete(&raw[split + 4..], headers)
        {
            break;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let Some((split, status, headers)) = head else {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("no complete response head ({} bytes)", raw.len()),
        ));
    };
    let mut body = raw[split + 4..].to_vec();
    if is_chunked(&headers) {
        body = dechunk(&body);
    }
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// (length of the head, status, headers) of a response head (without the blank line).
type Head = (usize, u16, Vec<(String, String)>);

/// Parses a response head (without the blank line).
fn parse_head(raw: &[u8]) -> io::Result<Head> {
    let head = String::from_utf8_lossy(raw).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad head: {head}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok((raw.len(), status, headers))
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"))
}

/// Whether `body` holds the whole message body the headers announce.
fn message_complete(body: &[u8], headers: &[(String, String)]) -> bool {
    if is_chunked(headers) {
        return body.ends_with(b"0\r\n\r\n")
            && (body.len() == 5 || body[..body.len() - 5].ends_with(b"\r\n"));
    }
    headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .is_some_and(|len| body.len() >= len)
}

/// The tutorial's request body: empty model, `Reply with exactly: <reply>`.
pub fn chat_body(reply: &str) -> String {
    serde_json::json!({
        "model": "",
        "messages": [{"role": "user", "content": format!("Reply with exactly: {reply}")}]
    })
    .to_string()
}

/// POSTs the tutorial's chat completion to `path` through the port-forward.
pub fn chat(port: u16, path: &str, reply: &str) -> io::Result<HttpResponse> {
    http(
        port,
        "POST",
        path,
        Some(&chat_body(reply)),
        Duration::from_secs(10),
    )
}

/// Checks a chat.completion the way the tutorial describes it; `Err` says what is wrong.
pub fn check_completion(r: &HttpResponse, model: &str, content: &str) -> Result<Value, String> {
    let summary = || {
        format!(
            "HTTP {} {}",
            r.status,
            r.body.chars().take(400).collect::<String>()
        )
    };
    if r.status != 200 {
        return Err(summary());
    }
    let v = r.json().ok_or_else(summary)?;
    let ok = v["object"] == "chat.completion"
        && v["model"] == model
        && v["choices"][0]["message"]["content"] == content
        && v["choices"][0]["finish_reason"].is_string()
        && v["usage"]["prompt_tokens"].is_u64()
        && v["usage"]["completion_tokens"].is_u64()
        && v["usage"]["total_tokens"].is_u64();
    if ok { Ok(v) } else { Err(summary()) }
}

/// Checks an OpenAI-shaped error `{"error": {"message", "type", "code"}}` with `status`.
pub fn check_openai_error(r: &HttpResponse, status: u16) -> Result<Value, String> {
    let v = r.json();
    match v {
        Some(v)
            if r.status == status
                && v["error"]["message"].is_string()
                && v["error"]["type"].is_string()
                && !v["error"]["code"].is_null() =>
        {
            Ok(v)
        }
        _ => Err(format!(
            "HTTP {} {}",
            r.status,
            r.body.chars().take(400).collect::<String>()
        )),
    }
}
