//! Steady load through a proxy Service from inside the cluster's netns, every answer checked
//! completely: the judge of "loses no request" while pods restart, are deleted or drain.
//! Threads in the netns reach the Service's ClusterIP, so kube-proxy picks a pod per connection
//! as it does for any in-cluster client (a `kubectl port-forward`, even to `svc/...`, pins one pod
//! and dies with it).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

/// Bounds of every loop, whatever happens to the pods.
const MAX_REQUESTS_PER_WORKER: u64 = 5_000;
const MAX_LOAD: Duration = Duration::from_secs(360);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Failures kept for the assertion message (all are counted).
const FAILURES_KEPT: usize = 50;

/// Where the load goes and what every answer must say.
#[derive(Clone, Debug)]
pub struct LoadTarget {
    /// The Service's ClusterIP and port.
    pub service: SocketAddr,
    /// The Host header.
    pub host: String,
    /// The model every answer names.
    pub model: &'static str,
    /// The text every answer holds (the model server echoes "Reply with exactly: ...").
    pub reply: &'static str,
}

impl LoadTarget {
    /// The Service `name` in `ns` on `port`, with Host `name.ns`.
    pub fn service(
        ns: &str,
        name: &str,
        port: u16,
        model: &'static str,
        reply: &'static str,
    ) -> Self {
        let ip = service_cluster_ip(ns, name);
        Self {
            service: SocketAddr::new(ip, port),
            host: format!("{name}.{ns}"),
            model,
            reply,
        }
    }

    /// One chat completion, streamed or not, checked completely: a 200 with the whole answer,
    /// and for a stream every chunk, the `stop` finish and the final `[DONE]`. Must run on a
    /// thread inside the cluster's netns.
    pub fn request(&self, stream: bool) -> Result<(), String> {
        let body = serde_json::json!({
            "model": "",
            "stream": stream,
            "messages": [{"role": "user", "content": format!("Reply with exactly: {}", self.reply)}]
        })
        .to_string();
        let r = http_to(
            self.service,
            &self.host,
            "POST",
            "/v1/chat/completions",
            Some(&body),
            REQUEST_TIMEOUT,
        )
        .map_err(|e| format!("{:?}: {e}", e.kind()))?;
        if stream {
            check_stream(&r, self.model, self.reply)
        } else {
            check_completion(&r, self.model, self.reply).map(|_| ())
        }
    }

    /// Waits until `n` answers in a row (both kinds) succeed: with kube-proxy picking a pod per
    /// connection, no pod is left without the route.
    pub fn warm_up(&self, n: usize, timeout: Duration) {
        let target = self.clone();
        in_cluster_thread(move || {
            let mut streak = 0;
            wait_for(
                &format!("{n} answers in a row through the Service"),
                timeout,
                Duration::from_millis(100),
                || {
                    while streak < n {
                        if let Err(e) = target.request(streak % 2 == 1) {
                            streak = 0;
                            return Err(e);
                        }
                        streak += 1;
                    }
                    Ok(())
                },
            );
        })
        .join()
        .expect("the warm-up thread");
    }
}

/// A complete SSE chat stream: chunks of `model` whose contents make `reply`, a `stop` finish,
/// `data: [DONE]` last, and no `event: error`.
pub fn check_stream(r: &HttpResponse, model: &str, reply: &str) -> Result<(), String> {
    let summary = |why: &str| {
        format!(
            "{why}: HTTP {} {}",
            r.status,
            r.body.chars().take(400).collect::<String>()
        )
    };
    if r.status != 200 {
        return Err(summary("not a 200"));
    }
    let (mut content, mut finished, mut done) = (String::new(), false, false);
    for line in r.body.lines().filter(|l| !l.trim().is_empty()) {
        if done {
            return Err(summary("data after [DONE]"));
        }
        if line.starts_with("event:") {
            return Err(summary("an SSE error event"));
        }
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            continue; // comments and other fields
        };
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value =
            serde_json::from_str(data).map_err(|_| summary("a chunk is not JSON"))?;
        if chunk["model"] != model {
            return Err(summary("a chunk of another model"));
        }
        if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str() {
            content.push_str(text);
        }
        finished |= chunk["choices"][0]["finish_reason"] == "stop";
    }
    if !done {
        return Err(summary("the stream ended without [DONE]"));
    }
    if !finished || content != reply {
        return Err(summary(&format!(
            "incomplete answer {content:?} (finish_reason stop: {finished})"
        )));
    }
    Ok(())
}

/// Runs `f` on a new thread inside the cluster's netns (where Service ClusterIPs are reachable).
pub fn in_cluster_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    std::thread::spawn(move || {
        enter_cluster_netns().unwrap_or_else(|e| panic!("enter netns {NETNS} (root?): {e}"));
        f()
    })
}

/// The names of the pods of a Deployment (terminating ones included), sorted.
pub fn deployment_pods(ns: &str, name: &str) -> Vec<String> {
    let dep = kubectl_json(&["get", "deployment", name, "-n", ns]);
    let pods = kubectl_json(&["get", "pods", "-n", ns, "-l", &label_selector(&dep)]);
    let mut names: Vec<String> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Counts of the load: plain ok/failed, streams ok/failed, and the loops past their first request.
#[derive(Default)]
struct Counters {
    plain_ok: AtomicU64,
    plain_failed: AtomicU64,
    stream_ok: AtomicU64,
    stream_failed: AtomicU64,
    loops_running: AtomicU64,
}

/// `[plain ok, plain failed, streams ok, streams failed]` so far.
pub type LoadCounts = [u64; 4];

/// Load loops running (odd ones stream); stopped when finished or dropped.
pub struct Load {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    failures: Arc<Mutex<Vec<String>>>,
    workers: Vec<JoinHandle<u64>>,
    started: Instant,
}

/// What a load run did.
#[derive(Debug)]
pub struct LoadReport {
    /// Requests sent.
    pub sent: u64,
    /// How long the load ran.
    pub elapsed: Duration,
    /// The final counts.
    pub counts: LoadCounts,
    /// The first failures, described.
    pub failures: Vec<String>,
}

impl LoadReport {
    /// Panics naming the failures unless every request succeeded, the load stayed within its
    /// time bound, and there was enough of it to judge.
    pub fn assert_none_lost(&self, during: &str, min_plain: u64, min_streams: u64) {
        let [plain_ok, plain_failed, stream_ok, stream_failed] = self.counts;
        assert!(
            plain_failed == 0 && stream_failed == 0,
            "requests failed during {during} ({plain_failed} completions, {stream_failed} streams; first {}):\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
        assert!(
            self.elapsed < MAX_LOAD,
            "the load hit its time bound: {during} took too long to judge"
        );
        assert!(
            plain_ok >= min_plain && stream_ok >= min_streams,
            "too little load to judge: {plain_ok} completions, {stream_ok} streams"
        );
    }
}

impl Load {
    /// Starts `workers` loops against `target` and returns once every loop has finished a
    /// request and is on its next one, so requests of both kinds are in flight from then on.
    pub fn start(target: &LoadTarget, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        let started = Instant::now();
        let handles = (0..workers)
            .map(|w| {
                let (stop, counters, failures) = (stop.clone(), counters.clone(), failures.clone());
                let target = target.clone();
                in_cluster_thread(move || {
                    let stream = w % 2 == 1;
                    let (ok, failed) = if stream {
                        (&counters.stream_ok, &counters.stream_failed)
                    } else {
                        (&counters.plain_ok, &counters.plain_failed)
                    };
                    let mut sent = 0;
                    while !stop.load(Ordering::Relaxed)
                        && sent < MAX_REQUESTS_PER_WORKER
                        && started.elapsed() < MAX_LOAD
                    {
                        sent += 1;
                        let at = started.elapsed();
                        match target.request(stream) {
                            Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                let mut kept = failures.lock().unwrap_or_else(|p| p.into_inner());
                                if kept.len() < FAILURES_KEPT {
                                    kept.push(format!(
                                        "worker {w} ({}) at {} ms: {e}",
                                        if stream { "stream" } else { "plain" },
                                        ms(at)
                                    ));
                                }
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                        if sent == 1 {
                            counters.loops_running.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    sent
                })
            })
            .collect();
        let load = Load {
            stop,
            counters,
            failures,
            workers: handles,
            started,
        };
        wait_for(
            "every load loop to finish its first request",
            REQUEST_TIMEOUT + secs(30),
            poll(),
            || {
                let running = load.counters.loops_running.load(Ordering::Relaxed);
                if running == workers as u64 {
                    Ok(())
                } else {
                    Err(format!(
                        "{running} of {workers} loops past their first request"
                    ))
                }
            },
        );
        load
    }

    /// The counts so far.
    pub fn counts(&self) -> LoadCounts {
        let c = &self.counters;
        [&c.plain_ok, &c.plain_failed, &c.stream_ok, &c.stream_failed]
            .map(|n| n.load(Ordering::Relaxed))
    }

    /// Stops the loops, waits for their last requests, and reports.
    pub fn finish(mut self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let sent = std::mem::take(&mut self.workers)
            .into_iter()
            .map(|w| w.join().expect("a load thread panicked"))
            .sum();
        LoadReport {
            sent,
            elapsed: self.started.elapsed(),
            counts: self.counts(),
            failures: self
                .failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

impl Drop for Load {
    /// A scenario that fails half-way stops its loops too.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
