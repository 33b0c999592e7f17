//! The release binary as a process: its memory stays within a pod's limit when many clients send
//! large bodies at once, and an accept loop out of file descriptors backs off instead of spinning.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;

const BINARY: &str = env!("CARGO_BIN_EXE_agentgateway-proxy");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Process {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on `yaml`, under `prefix` (e.g. `prlimit --nofile=...`), and waits until ready.
async fn spawn(yaml: &str, prefix: &[&str], extra: &[&str]) -> Process {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), yaml).unwrap();
    let (port, ready, metrics) = (free_port(), free_port(), free_port());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut command = match prefix.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(BINARY);
            c
        }
        None => Command::new(BINARY),
    };
    command
        .args(["--config", dir.path().to_str().unwrap()])
        .args(["--listen", &addr.to_string()])
        .args(["--ready-addr", &format!("127.0.0.1:{ready}")])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Killed and waited for by Process's Drop, on every path.
    let process = Process {
        child: command.spawn().unwrap(),
        addr,
        _dir: dir,
    };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return process;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the proxy did not start");
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_concurrent_nine_mib_requests_stay_under_256_mib_and_each_is_served_or_told_503() {
    let a = mock("a").await;
    let yaml = config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]);
    let proxy = spawn(&yaml, &[], &[]).await;
    let filler = "x".repeat(9 << 20);
    let body = Bytes::from(format!(
        "{{\"model\":\"\",\"messages\":[{{\"role\":\"user\",\"content\":\"{filler}\"}}]}}"
    ));
    let client = client();
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (client, body, addr) = (client.clone(), body.clone(), proxy.addr);
        tasks.push(tokio::spawn(async move {
            let request = http::Request::post(format!("http://{addr}/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(body))
                .unwrap();
            let response = client.request(request).await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, retry_after, body)
        }));
    }
    let mut served = 0;
    let mut refused = 0;
    for task in tasks {
        let (status, retry_after, body) = task.await.unwrap();
        match status {
            200 => served += 1,
            503 => {
                assert!(retry_after, "a 503 says when to retry");
                assert!(String::from_utf8_lossy(&body).contains("\"overloaded\""));
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&body)),
        }
    }
    let peak_mib = status_kib(proxy.child.id(), "VmHWM:") / 1024;
    println!("served {served}, refused {refused}, peak RSS {peak_mib} MiB");
    assert!(served > 0);
    assert!(peak_mib < 256, "peak RSS {peak_mib} MiB");
    // Still up and serving.
    let reply = client
        .request(
            http::Request::post(format!("http://{}/v1/chat/completions", proxy.addr))
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(Bytes::from(
                    chat("hi").to_string(),
                )))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
}

#[tokio::test]
async fn out_of_file_descriptors_the_accept_loop_backs_off_and_recovers() {
    let a = mock("a").await;
    let yaml = config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]);
    let proxy = spawn(&yaml, &["prlimit", "--nofile=48:48"], &[]).await;
    let pid = proxy.child.id();
    let mut held = Vec::new();
    for _ in 0..80 {
        if let Ok(stream) = tokio::net::TcpStream::connect(proxy.addr).await {
            held.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spent = cpu_ticks(pid) - before;
    // A spinning loop burns the whole two seconds (200 ticks); backing off costs next to nothing.
    assert!(
        spent < 40,
        "{spent} ticks of CPU in 2 s while out of descriptors"
    );
    drop(held);
    let client = client();
    let mut ok = false;
    for _ in 0..40 {
        let request = http::Request::post(format!("http://{}/v1/chat/completions", proxy.addr))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(Bytes::from(
                chat("hi").to_string(),
            )))
            .unwrap();
        if let Ok(response) = client.request(request).await
            && response.status() == 200
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "serves again once descriptors are free");
}
