//! A rolling restart of a proxy Deployment under load loses no request (s8). Against the real 1.20
//! cluster, like `scenarios.rs` (`#[ignore]`d; `e2e/run.sh` runs them).

use std::time::Instant;

use e2e::*;

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

    let target = LoadTarget::service(ROLL_NS, ROLL_GW, 80, ROLL_MODEL, ROLL_REPLY);
    say(format!(
        "load goes to Service {ROLL_NS}/{ROLL_GW} at {} from the cluster's netns",
        target.service
    ));
    target.warm_up(20, secs(90));
    let load = Load::start(&target, ROLL_WORKERS);

    // ---- the rolling restart
    let old_pods = deployment_pods(ROLL_NS, ROLL_GW);
    assert_eq!(old_pods.len(), 2, "{old_pods:?}");
    let before = load.counts();
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
    let during = load.counts();
    // Not a wait for a condition: this paces the load generator, which keeps running for 5 s
    // after the old pods are gone, so requests still routed on stale endpoints or kube-proxy rules
    // right after the roll are part of the sample. There is nothing to poll for here.
    std::thread::sleep(secs(5));
    let report = load.finish();
    let [plain_ok, plain_failed, stream_ok, stream_failed] = report.counts;
    let in_roll: u64 = (0..4).map(|i| during[i] - before[i]).sum();
    figure(
        "s8",
        format!(
            "rolling restart of 2 proxy replicas under load through the Service: {} requests \
             sent in {} ms ({in_roll} completed during the roll); completions {plain_ok} ok / \
             {plain_failed} failed, streams {stream_ok} ok / {stream_failed} failed; rollout \
             status after {} ms, old pods gone after {} ms",
            report.sent,
            ms(report.elapsed),
            ms(rolled),
            ms(old_gone)
        ),
    );
    say(format!("proxy pods {old_pods:?} -> {new_pods:?}"));
    assert_eq!(new_pods.len(), 2, "{new_pods:?}");
    report.assert_none_lost("the rolling restart", 20, 5);
    assert!(in_roll > 0, "no request completed during the roll");
    drop(cleanup);
}
