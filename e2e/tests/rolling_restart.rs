//! A rolling restart of a proxy Deployment under load loses no request (s8). Against the real 1.20
//! cluster, like `scenarios.rs` (`#[ignore]`d; `e2e/run.sh` runs them).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::*;
use serde_json::Value;

/// s8's namespace; its Gateway, hence the proxy Deployment and Service.
const ROLL_NS: &str = "e2e-rolling";
const ROLL_GW: &str = "rolling-gw";
const ROLL_MODEL: &str = "rolling-model";
/// s8's model server (`host.docker.internal:8093` in the cluster): slow enough that requests and
/// streams are in flight when a proxy pod gets SIGTERM.
const ROLL_MOCK_PORT: u16 = 8093;
const ROLL_MOCK_ARGS: &[&str] = &["--chunk-delay-ms", "150", "--fault", "delay-ms=200"];
/// Six words: six content chunks, so a stream lasts about 1.5 s.
const ROLL_REPLY: &str = "one two three four five six";
/// Concurrent request loops; the odd ones stream.
const ROLL_WORKERS: usize = 4;
/// Bounds of every loop, whatever happens to the rollout.
const ROLL_MAX_REQUESTS_PER_WORKER: u64 = 5_000;
const ROLL_MAX_LOAD: Duration = Duration::from_secs(360);
const ROLL_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Failures kept for the assertion message (all are counted).
const ROLL_FAILURES_KEPT: usize = 50;

fn rolling_yaml() -> String {
    format!(
        "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: rolling
  namespace: {ROLL_NS}
  labels: {{{TEST_LABEL}: \"true\"}}
spec:
  ai:
    provider:
      host: host.docker.internal
      port: {ROLL_MOCK_PORT}
      openai:
        model: {ROLL_MODEL}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: rolling
  namespace: {ROLL_NS}
  labels: {{{TEST_LABEL}: \"true\"}}
spec:
  parentRefs:
  - name: {ROLL_GW}
  rules:
  - backendRefs:
    - {{name: rolling, group: agentgateway.dev, kind: AgentgatewayBackend}}
"
    )
}

/// One chat completion through the Service, streamed or not, checked completely: a 200 with the
/// whole answer, and for a stream every chunk, the `stop` finish and the final `[DONE]`. Must run
/// on a thread inside the cluster's netns.
fn rolling_request(service: SocketAddr, stream: bool) -> Result<(), String> {
    let body = serde_json::json!({
        "model": "",
        "stream": stream,
        "messages": [{"role": "user", "content": format!("Reply with exactly: {ROLL_REPLY}")}]
    })
    .to_string();
    let host = format!("{ROLL_GW}.{ROLL_NS}");
    let r = http_to(
        service,
        &host,
        "POST",
        "/v1/chat/completions",
        Some(&body),
        ROLL_REQUEST_TIMEOUT,
    )
    .map_err(|e| format!("{:?}: {e}", e.kind()))?;
    if stream {
        check_stream(&r)
    } else {
        check_completion(&r, ROLL_MODEL, ROLL_REPLY).map(|_| ())
    }
}

/// A complete SSE chat stream: chunks of [`ROLL_MODEL`] whose contents make [`ROLL_REPLY`], a
/// `stop` finish, `data: [DONE]` last, and no `event: error`.
fn check_stream(r: &HttpResponse) -> Result<(), String> {
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
        if chunk["model"] != ROLL_MODEL {
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
    if !finished || content != ROLL_REPLY {
        return Err(summary(&format!(
            "incomplete answer {content:?} (finish_reason stop: {finished})"
        )));
    }
    Ok(())
}

/// Runs `f` on a new thread inside the cluster's netns (where Service ClusterIPs are reachable).
fn in_cluster_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        enter_cluster_netns().unwrap_or_else(|e| panic!("enter netns {NETNS} (root?): {e}"));
        f()
    })
}

/// The names of the pods of a Deployment (including terminating ones).
fn deployment_pods(ns: &str, name: &str) -> Vec<String> {
    let dep = kubectl_json(&["get", "deployment", name, "-n", ns]);
    let selector = label_selector(&dep);
    let pods = kubectl_json(&["get", "pods", "-n", ns, "-l", &selector]);
    let mut names: Vec<String> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Stops the load loops when the scenario ends, also when it fails half-way.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Counts of the load: plain ok/failed, streams ok/failed, and the loops past their first request.
#[derive(Default)]
struct RollCounters {
    plain_ok: AtomicU64,
    plain_failed: AtomicU64,
    stream_ok: AtomicU64,
    stream_failed: AtomicU64,
    loops_running: AtomicU64,
}

impl RollCounters {
    fn snapshot(&self) -> [u64; 4] {
        [
            &self.plain_ok,
            &self.plain_failed,
            &self.stream_ok,
            &self.stream_failed,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

/// A `kubectl rollout restart` of a 2-replica proxy Deployment under steady load through its
/// Service loses no request: every completion is a 200 with the whole answer and every stream ends
/// with `[DONE]`. The load runs from threads inside the cluster's netns to the Service's ClusterIP,
/// so kube-proxy picks a pod per connection as it does for any in-cluster client (a `kubectl
/// port-forward`, even to `svc/...`, pins one pod and dies with it). What makes it pass: the
/// proxy's drain (readiness fails on SIGTERM, it keeps accepting for `--drain-delay` while the
/// endpoints and kube-proxy catch up, then lets in-flight requests finish within
/// `--drain-timeout`), a pod grace period that covers both, and a rolling update that keeps both
/// replicas available (maxUnavailable 25% of 2 = 0).
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s8_rolling_restart_loses_no_request() {
    // `--proxy-replicas` is the supported knob (chart value `proxy.replicas`); the operator owns
    // the Deployments' replicas.
    let opts = OperatorOpts {
        proxy_replicas: 2,
        ..OperatorOpts::new("s8-operator")
    };
    let _fx = Fixture::up_with(opts, "s8");
    let _mock = start_mock_llm(
        "s8-mock-llm",
        &format!("{NODE_IP}:{ROLL_MOCK_PORT}"),
        ROLL_MODEL,
        ROLL_MOCK_ARGS,
    );
    let mut cleanup = Cleanup::new();
    cleanup.namespace(ROLL_NS);
    create_test_namespace(ROLL_NS);
    apply(&gateway_yaml(ROLL_NS, ROLL_GW));
    apply(&rolling_yaml());
    let took = wait_proxy_ready(ROLL_NS, ROLL_GW, secs(180));
    say(format!(
        "{ROLL_NS}/{ROLL_GW}: 2 proxy replicas Ready after {} ms",
        ms(took)
    ));
    let dep = kubectl_json(&["get", "deployment", ROLL_GW, "-n", ROLL_NS]);
    assert_eq!(dep["spec"]["replicas"], 2, "--proxy-replicas 2 not applied");
    let pod_spec = &dep["spec"]["template"]["spec"];
    let grace = pod_spec["terminationGracePeriodSeconds"].as_i64();
    let args = pod_spec["containers"][0]["args"].clone();
    say(format!(
        "proxy pods: terminationGracePeriodSeconds {grace:?}, args {args}"
    ));
    assert_eq!(
        grace,
        Some(45),
        "the grace period should cover the drain delay (5 s) and timeout (30 s) plus 10 s"
    );

    let ip = kubectl_ok(
        &[
            "get",
            "service",
            ROLL_GW,
            "-n",
            ROLL_NS,
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
        None,
    );
    let ip: IpAddr = ip
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("Service {ROLL_NS}/{ROLL_GW} ClusterIP {ip:?}: {e}"));
    let service = SocketAddr::new(ip, 80);
    say(format!(
        "load goes to Service {ROLL_NS}/{ROLL_GW} at {service} from the cluster's netns"
    ));

    // Served by both replicas before the load starts: kube-proxy picks a pod per connection, so
    // 20 successes in a row (both kinds) leave no pod without the route.
    in_cluster_thread(move || {
        let mut streak = 0;
        wait_for(
            "20 answers in a row through the Service",
            secs(90),
            Duration::from_millis(100),
            || {
                while streak < 20 {
                    if let Err(e) = rolling_request(service, streak % 2 == 1) {
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

    // ---- steady load: ROLL_WORKERS loops, bounded in count and time
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_panic = StopOnDrop(stop.clone());
    let counters = Arc::new(RollCounters::default());
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let load_start = Instant::now();
    let workers: Vec<_> = (0..ROLL_WORKERS)
        .map(|w| {
            let (stop, counters, failures) = (stop.clone(), counters.clone(), failures.clone());
            in_cluster_thread(move || {
                let stream = w % 2 == 1;
                let (ok, failed) = if stream {
                    (&counters.stream_ok, &counters.stream_failed)
                } else {
                    (&counters.plain_ok, &counters.plain_failed)
                };
                let mut sent = 0;
                while !stop.load(Ordering::Relaxed)
                    && sent < ROLL_MAX_REQUESTS_PER_WORKER
                    && load_start.elapsed() < ROLL_MAX_LOAD
                {
                    sent += 1;
                    let at = load_start.elapsed();
                    match rolling_request(service, stream) {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            let mut kept = failures.lock().unwrap_or_else(|p| p.into_inner());
                            if kept.len() < ROLL_FAILURES_KEPT {
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
    // The roll starts once every loop has finished a request and is on its next one, so requests
    // of both kinds are in flight when the first pod gets SIGTERM.
    wait_for(
        "every load loop to finish its first request",
        ROLL_REQUEST_TIMEOUT + secs(30),
        poll(),
        || {
            let running = counters.loops_running.load(Ordering::Relaxed);
            if running == ROLL_WORKERS as u64 {
                Ok(())
            } else {
                Err(format!(
                    "{running} of {ROLL_WORKERS} loops past their first request"
                ))
            }
        },
    );

    // ---- the rolling restart
    let old_pods = deployment_pods(ROLL_NS, ROLL_GW);
    assert_eq!(old_pods.len(), 2, "{old_pods:?}");
    let before = counters.snapshot();
    let t0 = Instant::now();
    kubectl_show(
        &[
            "rollout",
            "restart",
            &format!("deployment/{ROLL_GW}"),
            "-n",
            ROLL_NS,
        ],
        None,
    );
    kubectl_show(
        &[
            "rollout",
            "status",
            &format!("deployment/{ROLL_GW}"),
            "-n",
            ROLL_NS,
            "--timeout=180s",
        ],
        None,
    );
    let rolled = t0.elapsed();
    // `rollout status` returns when the new pods are available; the last old one is still
    // draining. Keep the load on until it is gone, so its listener closing is covered too.
    let new_pods = wait_for(
        "the old proxy pods to finish draining and go",
        secs(90),
        poll(),
        || {
            let now = deployment_pods(ROLL_NS, ROLL_GW);
            if now.iter().any(|p| old_pods.contains(p)) {
                Err(format!("{old_pods:?} -> {now:?}"))
            } else {
                Ok(now)
            }
        },
    );
    let old_gone = t0.elapsed();
    let during = counters.snapshot();
    // Not a wait for a condition: this paces the load generator, which keeps running for 5 s
    // after the old pods are gone, so requests still routed on stale endpoints or kube-proxy rules
    // right after the roll are part of the sample. There is nothing to poll for here.
    std::thread::sleep(secs(5));
    stop.store(true, Ordering::Relaxed);
    let sent: u64 = workers
        .into_iter()
        .map(|w| w.join().expect("a load thread panicked"))
        .sum();
    let load_time = load_start.elapsed();
    let [plain_ok, plain_failed, stream_ok, stream_failed] = counters.snapshot();
    let in_roll: u64 = (0..4).map(|i| during[i] - before[i]).sum();
    figure(
        "s8",
        format!(
            "rolling restart of 2 proxy replicas under load through the Service: {sent} requests \
             sent in {} ms ({in_roll} completed during the roll); completions {plain_ok} ok / \
             {plain_failed} failed, streams {stream_ok} ok / {stream_failed} failed; rollout \
             status after {} ms, old pods gone after {} ms",
            ms(load_time),
            ms(rolled),
            ms(old_gone)
        ),
    );
    say(format!("proxy pods {old_pods:?} -> {new_pods:?}"));
    assert_eq!(new_pods.len(), 2, "{new_pods:?}");
    let failures = failures.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(
        plain_failed == 0 && stream_failed == 0,
        "requests failed during the rolling restart ({plain_failed} completions, \
         {stream_failed} streams; first {}):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        load_time < ROLL_MAX_LOAD,
        "the load hit its time bound: the roll took too long to judge"
    );
    assert!(
        plain_ok >= 20 && stream_ok >= 5 && in_roll > 0,
        "too little load to judge: {plain_ok} completions, {stream_ok} streams, {in_roll} during the roll"
    );
    drop(cleanup);
}
