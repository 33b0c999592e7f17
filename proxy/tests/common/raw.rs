//! Raw TCP peers for what well-behaved HTTP libraries will not do: clients that stall mid-header,
//! upstreams that answer with hostile bytes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads until the peer closes or `limit` passes; returns what arrived and whether it closed.
pub async fn read_until_close(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body (enough for the proxy's own answers).
pub async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("readable");
        assert!(
            n > 0,
            "closed before a whole response: {:?}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).to_string();
        if is_whole_message(&text) {
            return text;
        }
    }
}

/// Whether `text` holds a whole HTTP/1.1 message: its head and the `Content-Length` bytes after.
fn is_whole_message(text: &str) -> bool {
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= len
}

/// An upstream that answers every request with a `200` JSON `body` in `chunk`-sized writes and
/// the extra `headers` (each ending in `\r\n`).
pub async fn json_upstream(body: &str, headers: &str, chunk: usize) -> SocketAddr {
    let head: &'static str = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\n\r\n",
            body.len()
        )
        .into_boxed_str(),
    );
    let chunks = body
        .as_bytes()
        .chunks(chunk.max(1))
        .map(<[u8]>::to_vec)
        .collect();
    hostile_upstream(head, chunks, Duration::ZERO, Duration::ZERO).await
}

/// An upstream that answers every request with `head` and then the `chunks`, `pause` apart,
/// then holds the connection open for `hold` before closing it.
pub async fn hostile_upstream(
    head: &'static str,
    chunks: Vec<Vec<u8>>,
    pause: Duration,
    hold: Duration,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let chunks = chunks.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 65536];
                // The whole request (head and Content-Length body) before answering.
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    if is_whole_message(&String::from_utf8_lossy(&request)) {
                        break;
                    }
                }
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for chunk in chunks {
                    if stream.write_all(&chunk).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(pause).await;
                }
                tokio::time::sleep(hold).await;
            });
        }
    });
    addr
}
