//! The end-to-end scenarios, against the real 1.20 cluster `e2e/run.sh` brings up.
//! Run serially (`--test-threads=1`): they share the cluster, the Gateway `agentgateway-proxy` and
//! the model server address. Each cleans up what it created (also when it fails).
//! They are `#[ignore]`d so that `cargo test --workspace` skips them; `e2e/run.sh` runs them with
//! `--ignored`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentgateway_mock_llm::MockLlmConfig;
use e2e::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------- 0

/// The generated Gateway API CRDs install on 1.20 with server-side and with plain `kubectl apply`,
/// serve v1 and v1beta1, and store the tutorial's HTTPRoute (AgentgatewayBackend backendRefs with
/// group, kind and namespace) and empty-string fields intact.
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s0_gateway_api_crds_on_kubernetes_1_20() {
    let e = env();
    let file = e.workspace.join("e2e/crds/gateway-api.yaml");
    let file = file.display().to_string();
    kubectl_show(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            "agentgateway-e2e",
            "-f",
            &file,
        ],
        None,
    );
    kubectl_show(&["apply", "-f", &file], None);
    install_crds();
    let versions = kubectl_ok(&["api-versions"], None);
    for v in [
        "gateway.networking.k8s.io/v1",
        "gateway.networking.k8s.io/v1beta1",
        "agentgateway.dev/v1alpha1",
    ] {
        assert!(
            versions.lines().any(|l| l == v),
            "{v} not served:\n{versions}"
        );
    }

    let ns = "e2e-crds";
    let mut cleanup = Cleanup::new();
    cleanup.namespace(ns);
    create_test_namespace(ns);

    // The tutorial's route, client-side and server-side applied, plus a rule with empty-string and
    // defaulted fields (core group "", Service kind, weight, matches).
    let route = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: local-llm
  namespace: e2e-crds
spec:
  parentRefs:
  - name: agentgateway-proxy
    namespace: agentgateway-system
  rules:
  - backendRefs:
    - name: local-llm
      namespace: agentgateway-system
      group: agentgateway.dev
      kind: AgentgatewayBackend
";
    let extra = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: edge-cases
  namespace: e2e-crds
spec:
  parentRefs:
  - group: gateway.networking.k8s.io
    kind: Gateway
    name: agentgateway-proxy
    namespace: agentgateway-system
    sectionName: http
  hostnames: [\"llm.example.com\"]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /r1}
      headers: [{name: x-team, value: a}]
      method: POST
    backendRefs:
    - {group: \"\", kind: Service, name: svc, port: 8080, weight: 3}
    - {group: agentgateway.dev, kind: AgentgatewayBackend, name: local-llm, weight: 0}
";
    for (yaml, server_side) in [(route, false), (extra, true)] {
        let mut args = vec!["apply", "-f-"];
        if server_side {
            args.extend(["--server-side", "--field-manager", "agentgateway-e2e"]);
        }
        kubectl_ok(&args, Some(yaml));
        let want: Value = serde_yaml::from_str(yaml).expect("test YAML");
        let name = want["metadata"]["name"].as_str().expect("name");
        for version in ["v1", "v1beta1"] {
            let got = kubectl_json(&[
                "get",
                &format!("httproutes.{version}.gateway.networking.k8s.io"),
                name,
                "-n",
                ns,
            ]);
            assert_eq!(
                got["spec"], want["spec"],
                "HTTPRoute {name} not stored intact (read as {version})"
            );
        }
    }
    // ReferenceGrant: v1beta1 is what agentgateway reads.
    kubectl_ok(
        &["apply", "-f-"],
        Some(
            "apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata:
  name: allow-routes
  namespace: e2e-crds
spec:
  from:
  - {group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: other}
  to:
  - {group: \"\", kind: Secret}
",
        ),
    );
    let rg = kubectl_json(&[
        "get",
        "referencegrants.v1.gateway.networking.k8s.io",
        "allow-routes",
        "-n",
        ns,
    ]);
    assert_eq!(rg["spec"]["to"][0]["group"], "", "ReferenceGrant: {rg}");
    // Printer columns of the generated CRDs.
    kubectl_show(&["get", "httproute", "-n", ns], None);
    say("s0: Gateway API CRDs accepted (server-side and client-side apply); objects stored intact");
}

// ---------------------------------------------------------------------------------------------- 1

/// The tutorial, step by step, with its exact commands and YAML.
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s1_tutorial() {
    let _fx = Fixture::up("s1");
    replay_tutorial("s1");
}

// ---------------------------------------------------------------------------------------------- 2

const KEY: &str = "sk-e2e-0123456789abcdef";

/// A backend whose key Secret is missing is Accepted=False/SecretNotFound; creating the Secret
/// flips it to True and the key reaches the provider as `Authorization: Bearer <key>`.
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s2_secret_ref_auth() {
    let _fx = Fixture::up("s2");
    // the provider: a mock-llm in this process (to read the request headers it received),
    // listening in the cluster netns at host.docker.internal:8091
    let keyed = NetnsMock::start(
        &format!("{NODE_IP}:8091"),
        MockLlmConfig {
            name: "keyed".into(),
            model: "keyed-model".into(),
            ..Default::default()
        },
    );
    let mut cleanup = Cleanup::new();
    cleanup.kubectl(&[
        "delete",
        "httproute",
        "e2e-auth",
        "-n",
        NS,
        "--ignore-not-found",
    ]);
    cleanup.kubectl(&[
        "delete",
        "agentgatewaybackend",
        "e2e-auth",
        "-n",
        NS,
        "--ignore-not-found",
    ]);
    cleanup.kubectl(&[
        "delete",
        "secret",
        "e2e-provider-key",
        "-n",
        NS,
        "--ignore-not-found",
    ]);
    kubectl_ok(
        &[
            "delete",
            "secret",
            "e2e-provider-key",
            "-n",
            NS,
            "--ignore-not-found",
        ],
        None,
    );

    apply(&format!(
        "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: e2e-auth
  namespace: {NS}
  labels: {{{TEST_LABEL}: \"true\"}}
spec:
  ai:
    provider:
      host: host.docker.internal
      port: 8091
      openai:
        model: keyed-model
      policies:
        auth:
          secretRef:
            name: e2e-provider-key
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: e2e-auth
  namespace: {NS}
  labels: {{{TEST_LABEL}: \"true\"}}
spec:
  parentRefs:
  - name: {GATEWAY}
  rules:
  - backendRefs:
    - {{name: e2e-auth, group: agentgateway.dev, kind: AgentgatewayBackend}}
"
    ));
    let (status, reason, message) = wait_for("e2e-auth Accepted=False", secs(30), poll(), || {
        let b = get_json(&["agentgatewaybackend", "e2e-auth", "-n", NS]).ok_or("missing")?;
        match condition(&b, "Accepted") {
            Some(c) if c.0 == "False" => Ok(c),
            other => Err(format!("{other:?}")),
        }
    });
    say(format!(
        "without the Secret: Accepted={status} reason={reason} message={message:?}"
    ));
    assert_eq!(reason, "SecretNotFound");
    assert!(
        message.contains("e2e-provider-key"),
        "the message should name the Secret: {message}"
    );
    kubectl_show(&["get", "agentgatewaybackend", "e2e-auth", "-n", NS], None);

    let mut pf = PortForward::start(NS, "deployment/agentgateway-proxy", free_port(), 80);
    if let Ok(r) = pf.chat("/v1/chat/completions", "no key yet") {
        say(format!(
            "request before the Secret exists: HTTP {} {}",
            r.status, r.body
        ));
    }
    let before = keyed.mock.request_count();

    let t0 = Instant::now();
    apply(&format!(
        "apiVersion: v1
kind: Secret
metadata:
  name: e2e-provider-key
  namespace: {NS}
  labels: {{{TEST_LABEL}: \"true\"}}
stringData:
  Authorization: {KEY}
"
    ));
    wait_for(
        "e2e-auth Accepted=True",
        secs(30),
        Duration::from_millis(100),
        || {
            let b = get_json(&["agentgatewaybackend", "e2e-auth", "-n", NS]).ok_or("missing")?;
            match condition(&b, "Accepted") {
                Some(c) if c.0 == "True" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );
    figure(
        "s2",
        format!(
            "Secret created -> backend Accepted=True in {} ms",
            ms(t0.elapsed())
        ),
    );
    let (took, _) = wait_served(
        &mut pf,
        "a completion from the keyed provider",
        "/v1/chat/completions",
        "keyed ok",
        secs(30),
        |r| check_completion(r, "keyed-model", "keyed ok"),
    );
    figure(
        "s2",
        format!(
            "Secret created -> keyed provider served in {} ms",
            ms(t0.elapsed())
        ),
    );
    let _ = took;
    let reqs = keyed.mock.requests();
    let last = reqs.last().expect("the provider saw the request");
    assert!(reqs.len() > before, "no request reached the keyed provider");
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {KEY}").as_str()),
        "the provider got headers {:?}",
        last.headers
    );
    say("the provider received `Authorization: Bearer <key>`");
    // the key is in the credentials Secret, never in the ConfigMap
    let cm = configmap_text(NS, &format!("{GATEWAY}-config"));
    assert!(
        !cm.contains(KEY),
        "the key leaked into the ConfigMap:\n{cm}"
    );
    let creds = kubectl_json(&["get", "secret", &format!("{GATEWAY}-credentials"), "-n", NS]);
    assert!(
        creds["data"].as_object().is_some_and(|d| !d.is_empty()),
        "credentials Secret is empty: {creds}"
    );
    drop(pf);
    drop(cleanup);
    drop(keyed);
}

// ---------------------------------------------------------------------------------------------- 3

/// Deleting a Gateway garbage-collects everything the operator created for it. Uses its own
/// Gateway in its own namespace, so the shared one stays.
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s3_gateway_deletion_garbage_collects() {
    let _fx = Fixture::up("s3");
    let ns = "e2e-gc";
    let gw = "gc-gw";
    let mut cleanup = Cleanup::new();
    cleanup.namespace(ns);
    create_test_namespace(ns);
    apply(&gateway_yaml(ns, gw));
    let owned = proxy_objects(gw);
    let gw_uid = kubectl_json(&["get", "gateway", gw, "-n", ns])["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_owned();
    let t0 = Instant::now();
    wait_for("the operator's objects for gc-gw", secs(60), poll(), || {
        let mut missing = Vec::new();
        for (kind, name) in &owned {
            match get_json(&[kind, name, "-n", ns]) {
                None => missing.push(format!("{kind}/{name}")),
                Some(o) => {
                    let owners = o["metadata"]["ownerReferences"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    if !owners
                        .iter()
                        .any(|r| r["uid"] == gw_uid.as_str() && r["kind"] == "Gateway")
                    {
                        missing.push(format!("{kind}/{name} (no ownerReference to the Gateway)"));
                    }
                }
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("{missing:?}"))
        }
    });
    figure(
        "s3",
        format!(
            "Gateway created -> all 7 owned objects present in {} ms",
            ms(t0.elapsed())
        ),
    );
    kubectl_show(
        &[
            "get",
            "deployment,service,serviceaccount,role,rolebinding,configmap,secret",
            "-n",
            ns,
        ],
        None,
    );

    let t0 = Instant::now();
    kubectl_show(&["delete", "gateway", gw, "-n", ns], None);
    wait_gone(
        "garbage collection of gc-gw's objects",
        ns,
        &owned,
        secs(60),
    );
    figure(
        "s3",
        format!(
            "Gateway deleted -> all 7 owned objects gone in {} ms",
            ms(t0.elapsed())
        ),
    );
    // the proxy pods go with the ReplicaSet; how long they take to stop is the proxy's shutdown
    let pods_gone = wait_for("the proxy pods of gc-gw to stop", secs(90), poll(), || {
        let pods = kubectl_ok(&["get", "pods", "-n", ns, "-o", "name"], None);
        if pods.trim().is_empty() {
            Ok(t0.elapsed())
        } else {
            Err(pods)
        }
    });
    figure(
        "s3",
        format!(
            "Gateway deleted -> its proxy pods gone in {} ms (terminationGracePeriodSeconds 45)",
            ms(pods_gone)
        ),
    );
    // the shared Gateway is untouched
    assert!(
        get_json(&["deployment", GATEWAY, "-n", NS]).is_some(),
        "the shared proxy Deployment went away"
    );
}

// ---------------------------------------------------------------------------------------------- 4

const MANAGED_KINDS: &str = "deployment,service,serviceaccount,role,rolebinding,configmap,secret,gateway,httproute,agentgatewaybackend";

fn snapshot() -> BTreeMap<String, String> {
    let mut s = resource_versions(MANAGED_KINDS, NS);
    s.extend(resource_versions("gatewayclass", ""));
    s
}

fn lease_holders(ns: &str) -> BTreeMap<String, String> {
    let list = kubectl_json(&["get", "leases", "-n", ns]);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["metadata"]["name"].as_str().unwrap_or("?").to_owned(),
                l["spec"]["holderIdentity"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect()
}

/// The sum of all samples of a metric family in a Prometheus text exposition (`None` if absent).
fn metric_sum(metrics: &str, family: &str) -> Option<f64> {
    let values: Vec<f64> = metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.split_whitespace().last()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

fn leader_lines(metrics: &str) -> String {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && l.to_ascii_lowercase().contains("leader"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn accepted(name: &str) -> Result<(), String> {
    let b = get_json(&["agentgatewaybackend", name, "-n", NS]).ok_or("missing")?;
    match condition(&b, "Accepted") {
        Some(c) if c.0 == "True" => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

fn probe_backend(name: &str) -> String {
    format!(
        "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: {name}
  namespace: {NS}
  labels: {{{TEST_LABEL}: \"true\"}}
spec:
  ai:
    provider:
      host: host.docker.internal
      port: 8090
      openai:
        model: {MODEL}
"
    )
}

/// Restarting the operator writes nothing; a second replica with leader election stays passive
/// until the leader's Lease expires, then takes over.
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s4_operator_restart_and_leader_election() {
    let fx = Fixture::up("s4");
    let Fixture { operator, mock } = fx;
    let mut operator = Some(operator);
    let mut cleanup = Cleanup::new();
    cleanup.kubectl(&[
        "delete",
        "httproute",
        "e2e-restart",
        "-n",
        NS,
        "--ignore-not-found",
    ]);
    cleanup.kubectl(&[
        "delete",
        "agentgatewaybackend",
        "e2e-restart",
        "e2e-le-1",
        "e2e-le-2",
        "-n",
        NS,
        "--ignore-not-found",
    ]);
    cleanup.kubectl(&[
        "delete",
        "namespace",
        "e2e-leader",
        "--ignore-not-found",
        "--wait=false",
    ]);

    // some state with statuses: a backend + route, served
    apply(&probe_backend("e2e-restart"));
    apply(&format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: e2e-restart
  namespace: {NS}
  labels: {{{TEST_LABEL}: \"true\"}}
spec:
  parentRefs:
  - name: {GATEWAY}
  rules:
  - backendRefs:
    - {{name: e2e-restart, group: agentgateway.dev, kind: AgentgatewayBackend}}
"
    ));
    wait_for("e2e-restart Accepted", secs(30), poll(), || {
        accepted("e2e-restart")
    });
    let mut pf = PortForward::start(NS, "deployment/agentgateway-proxy", free_port(), 80);
    wait_served(
        &mut pf,
        "e2e-restart served",
        "/v1/chat/completions",
        "restart",
        secs(30),
        |r| check_completion(r, MODEL, "restart"),
    );
    std::thread::sleep(secs(3)); // let the status writes settle
    let before = snapshot();
    say(format!(
        "{} objects recorded before the restart",
        before.len()
    ));

    // ---- restart: SIGTERM, start a new one, wait, compare
    if let Some(mut op) = operator.take() {
        op.proc.stop(secs(10));
    }
    let restarted = Operator::start(OperatorOpts::new("s4-operator-restarted"));
    std::thread::sleep(secs(10));
    let after = snapshot();
    let diff = changed(&before, &after);
    assert!(
        diff.is_empty(),
        "the restarted operator wrote:\n{}",
        diff.join("\n")
    );
    figure(
        "s4",
        format!(
            "operator restart: 0 writes to {} managed objects in 10 s",
            after.len()
        ),
    );
    wait_served(
        &mut pf,
        "still served after the restart",
        "/v1/chat/completions",
        "restart",
        secs(10),
        |r| check_completion(r, MODEL, "restart"),
    );
    let writes = metric_sum(
        &restarted.metrics().unwrap_or_default(),
        "agentgateway_operator_writes_total",
    );
    say(format!(
        "the restarted operator's agentgateway_operator_writes_total: {writes:?}"
    ));
    assert!(
        writes.unwrap_or(0.0) == 0.0,
        "the restarted operator counted {writes:?} writes"
    );
    drop(restarted);

    // ---- leader election: A leads, B waits
    let lease_ns = "e2e-leader";
    create_test_namespace(lease_ns);
    let le = |name: &str| OperatorOpts {
        leader_election: true,
        lease_namespace: lease_ns.into(),
        ..OperatorOpts::new(name)
    };
    let mut a = Operator::start(le("s4-operator-a"));
    let holders = wait_for("a Lease held by operator A", secs(60), poll(), || {
        let h = lease_holders(lease_ns);
        if h.values().any(|v| !v.is_empty()) {
            Ok(h)
        } else {
            Err(format!("{h:?}"))
        }
    });
    say(format!("leases with A alone: {holders:?}"));
    apply(&probe_backend("e2e-le-1"));
    wait_for("A reconciles e2e-le-1", secs(30), poll(), || {
        accepted("e2e-le-1")
    });
    std::thread::sleep(secs(2));
    let before = snapshot();

    let b = Operator::start(le("s4-operator-b"));
    std::thread::sleep(secs(10));
    let after = snapshot();
    let diff = changed(&before, &after);
    assert!(
        diff.is_empty(),
        "with operator B started, something wrote:\n{}",
        diff.join("\n")
    );
    assert_eq!(
        lease_holders(lease_ns),
        holders,
        "the Lease changed hands while A was alive"
    );
    let b_metrics = b.metrics().unwrap_or_default();
    for family in [
        "agentgateway_operator_writes_total",
        "agentgateway_operator_reconcile_total",
    ] {
        let n = metric_sum(&b_metrics, family);
        say(format!("operator B (standing by): {family} = {n:?}"));
        assert!(
            n.unwrap_or(0.0) == 0.0,
            "the passive replica has {family} = {n:?}"
        );
    }
    let a_metrics = a.metrics().unwrap_or_default();
    say(format!(
        "A's leader metrics:\n{}\nB's leader metrics:\n{}",
        leader_lines(&a_metrics),
        leader_lines(&b_metrics)
    ));
    let b_log = b.proc.own_log();
    let passive_lines: Vec<&str> = b_log
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("leader")
                || l.contains("lease")
                || l.contains("standby")
                || l.contains("follower")
        })
        .collect();
    say(format!(
        "B's log about leadership:\n{}",
        passive_lines.join("\n")
    ));
    assert!(
        !leader_lines(&b_metrics).is_empty() || !passive_lines.is_empty(),
        "operator B neither exposes a leader metric nor logs anything about the Lease"
    );
    if let Some(line) = b_metrics
        .lines()
        .find(|l| !l.starts_with('#') && l.to_ascii_lowercase().contains("leader"))
    {
        let value = line.split_whitespace().last().unwrap_or("");
        assert!(
            matches!(value, "0" | "0.0"),
            "B's leader metric says it leads: {line}"
        );
    }
    figure(
        "s4",
        "second replica: passive (no writes in 10 s, Lease unchanged)",
    );

    // ---- kill A (no chance to release the Lease); B takes over once it expires
    let t0 = Instant::now();
    a.proc.kill_now();
    apply(&probe_backend("e2e-le-2"));
    let mut took_lease = None;
    let mut reconciled = None;
    wait_for(
        "B to take over and reconcile e2e-le-2",
        secs(90),
        Duration::from_millis(200),
        || {
            if took_lease.is_none() && lease_holders(lease_ns) != holders {
                took_lease = Some(t0.elapsed());
            }
            if reconciled.is_none() && accepted("e2e-le-2").is_ok() {
                reconciled = Some(t0.elapsed());
                // One poll round (two kubectl calls) can take most of a second: look at the
                // Lease again right away, so a takeover just before the reconcile is not dated
                // after it. A reconcile under the old holder's Lease still fails below.
                if took_lease.is_none() && lease_holders(lease_ns) != holders {
                    took_lease = reconciled;
                }
            }
            match (took_lease, reconciled) {
                (Some(l), Some(r)) => Ok((l, r)),
                other => Err(format!("{other:?} leases {:?}", lease_holders(lease_ns))),
            }
        },
    );
    let (l, r) = (
        took_lease.unwrap_or_default(),
        reconciled.unwrap_or_default(),
    );
    figure(
        "s4",
        format!(
            "leader killed -> B holds the Lease after {} ms, reconciles after {} ms",
            ms(l),
            ms(r)
        ),
    );
    assert!(
        r + Duration::from_millis(500) >= l,
        "e2e-le-2 was reconciled ({} ms) before B held the Lease ({} ms)",
        ms(r),
        ms(l)
    );
    say(format!("leases now: {:?}", lease_holders(lease_ns)));
    if let Some(line) = b
        .metrics()
        .unwrap_or_default()
        .lines()
        .find(|l| !l.starts_with('#') && l.to_ascii_lowercase().contains("leader"))
    {
        say(format!("B's leader metric after the takeover: {line}"));
    }
    drop(pf);
    drop(cleanup);
    drop(b);
    drop(a);
    drop(mock);
}

// ---------------------------------------------------------------------------------------------- 5

const SCALE: usize = 200;

fn scale_yaml() -> String {
    let mut y = String::new();
    for i in 0..SCALE {
        let _ = write!(
            y,
            "---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: scale-{i:03}
  namespace: {NS}
  labels: {{{TEST_LABEL}: scale}}
spec:
  ai:
    provider:
      host: host.docker.internal
      port: 8090
      openai:
        model: scale-model-{i:03}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: scale-{i:03}
  namespace: {NS}
  labels: {{{TEST_LABEL}: scale}}
spec:
  parentRefs:
  - name: {GATEWAY}
  rules:
  - matches:
    - path: {{type: PathPrefix, value: /r{i}}}
    backendRefs:
    - {{name: scale-{i:03}, group: agentgateway.dev, kind: AgentgatewayBackend}}
"
        );
    }
    y
}

fn route_accepted(r: &Value) -> bool {
    r["status"]["parents"].as_array().is_some_and(|ps| {
        ps.iter()
            .any(|p| condition(p, "Accepted").is_some_and(|c| c.0 == "True"))
    })
}

/// 200 backends + 200 routes in one `kubectl apply`: all Accepted and served; then the latency of
/// one backend edit.
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s5_scale_200_backends_and_routes() {
    let _fx = Fixture::up("s5");
    let label = format!("{TEST_LABEL}=scale");
    let mut cleanup = Cleanup::new();
    cleanup.kubectl(&[
        "delete",
        "httproute,agentgatewaybackend",
        "-n",
        NS,
        "-l",
        &label,
        "--ignore-not-found",
        "--wait=false",
    ]);
    let file = env().artifacts.join("scale.yaml");
    std::fs::write(&file, scale_yaml()).expect("write scale.yaml");
    let mut pf = PortForward::start(NS, "deployment/agentgateway-proxy", free_port(), 80);

    let t0 = Instant::now();
    let out = kubectl_ok(&["apply", "-f", &file.display().to_string()], None);
    let applied = t0.elapsed();
    figure(
        "s5",
        format!(
            "kubectl apply of {} objects: {} ms ({} lines of output)",
            2 * SCALE,
            ms(applied),
            out.lines().count()
        ),
    );

    let mut backends_at = None;
    let mut routes_at = None;
    let mut config_at = None;
    wait_for(
        "all 200 backends and routes Accepted and in the ConfigMap",
        secs(300),
        Duration::from_millis(500),
        || {
            if backends_at.is_none() {
                let list = kubectl_json(&["get", "agentgatewaybackend", "-n", NS, "-l", &label]);
                let n = list["items"].as_array().map_or(0, |a| {
                    a.iter()
                        .filter(|b| condition(b, "Accepted").is_some_and(|c| c.0 == "True"))
                        .count()
                });
                if n == SCALE {
                    backends_at = Some(t0.elapsed());
                }
            }
            if routes_at.is_none() {
                let list = kubectl_json(&["get", "httproute", "-n", NS, "-l", &label]);
                let n = list["items"]
                    .as_array()
                    .map_or(0, |a| a.iter().filter(|r| route_accepted(r)).count());
                if n == SCALE {
                    routes_at = Some(t0.elapsed());
                }
            }
            if config_at.is_none() {
                let text = configmap_text(NS, &format!("{GATEWAY}-config"));
                let n = (0..SCALE)
                    .filter(|i| text.contains(&format!("scale-{i:03}")))
                    .count();
                if n == SCALE {
                    config_at = Some(t0.elapsed());
                }
            }
            match (backends_at, routes_at, config_at) {
                (Some(b), Some(r), Some(c)) => Ok((b, r, c)),
                other => Err(format!("(backends, routes, configmap) done at {other:?}")),
            }
        },
    );
    figure(
        "s5",
        format!(
            "200 backends Accepted after {} ms, 200 routes Accepted after {} ms, ConfigMap holds all 200 after {} ms (from the start of the apply)",
            ms(backends_at.unwrap_or_default()),
            ms(routes_at.unwrap_or_default()),
            ms(config_at.unwrap_or_default())
        ),
    );

    // Spot-check: a client whose base URL is http://gateway/r{i}/v1 reaches backend i. Checked in
    // two ways: the proxy's access log names route scale-{i} for the request (routing), and the
    // answer is a chat.completion with backend i's model (served as an LLM request).
    let sample = [0usize, 1, 57, 99, 123, 199];
    let mut problems = Vec::new();
    let mut routed = 0;
    let mut completions = 0;
    for i in sample {
        let model = format!("scale-model-{i:03}");
        let path = format!("/r{i}/v1/chat/completions");
        let r = wait_for(&format!("an answer on {path}"), secs(60), poll(), || {
            let r = pf.chat(&path, "scale ok").map_err(|e| e.to_string())?;
            // the proxy's own 404 means the route is not (yet) loaded; anything else came from upstream
            match check_openai_error(&r, 404) {
                Ok(v) if v["error"]["code"] == "route_not_found" => Err(r.body),
                _ => Ok(r),
            }
        });
        match check_completion(&r, &model, "scale ok") {
            Ok(_) => completions += 1,
            Err(e) => problems.push(format!(
                "POST {path}: expected a chat.completion with model {model}; got {e} (x-mock-llm-instance: {:?})",
                r.header("x-mock-llm-instance")
            )),
        }
    }
    let logs = kubectl_ok(
        &[
            "logs",
            "-n",
            NS,
            &format!("deployment/{GATEWAY}"),
            "--since=10m",
        ],
        None,
    );
    for i in sample {
        let path = format!("/r{i}/v1/chat/completions");
        let route = format!("{NS}/scale-{i:03}");
        let hit = logs
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| v["path"] == path.as_str() && v["route"] == route.as_str());
        if hit {
            routed += 1;
        } else {
            problems.push(format!(
                "no access-log line of the proxy says {path} went to route {route}"
            ));
        }
    }
    figure(
        "s5",
        format!(
            "spot-check of {} routes: {routed} routed to their own route (proxy access log), {completions} answered as chat.completion with their backend's model; {} ms after the start of the apply",
            sample.len(),
            ms(t0.elapsed())
        ),
    );

    // apply-to-served latency of one backend edit, with the 200 routes loaded. Measured on a
    // 201st route without matches (`/v1/chat/completions` matches none of the /r{i} prefixes) to
    // scale-057, so the answer shows the backend's model whatever happens on prefixed paths.
    cleanup.kubectl(&[
        "delete",
        "httproute",
        "scale-latency",
        "-n",
        NS,
        "--ignore-not-found",
    ]);
    apply(&format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: scale-latency
  namespace: {NS}
  labels: {{{TEST_LABEL}: scale}}
spec:
  parentRefs:
  - name: {GATEWAY}
  rules:
  - backendRefs:
    - {{name: scale-057, group: agentgateway.dev, kind: AgentgatewayBackend}}
"
    ));
    wait_served(
        &mut pf,
        "the latency route",
        "/v1/chat/completions",
        "edited",
        secs(60),
        |r| check_completion(r, "scale-model-057", "edited"),
    );
    let mut lat = Vec::new();
    for n in 2..=4 {
        let model = format!("scale-model-057-v{n}");
        let t0 = Instant::now();
        kubectl_ok(
            &[
                "patch",
                "agentgatewaybackend",
                "scale-057",
                "-n",
                NS,
                "--type",
                "merge",
                "-p",
                &format!(
                    "{{\"spec\":{{\"ai\":{{\"provider\":{{\"openai\":{{\"model\":\"{model}\"}}}}}}}}}}"
                ),
            ],
            None,
        );
        let patched = t0.elapsed();
        wait_served(
            &mut pf,
            &format!("scale-057 to serve {model}"),
            "/v1/chat/completions",
            "edited",
            secs(30),
            |r| check_completion(r, &model, "edited"),
        );
        let total = t0.elapsed();
        figure(
            "s5",
            format!(
                "apply-to-served latency: {} ms (kubectl patch of scale-057's model -> the proxy answers with {model}; {} ms after kubectl returned; 200 routes loaded)",
                ms(total),
                ms(total.saturating_sub(patched))
            ),
        );
        lat.push(total);
    }
    lat.sort();
    figure(
        "s5",
        format!(
            "apply-to-served latency: median {} ms of {:?} ms",
            ms(lat[lat.len() / 2]),
            lat.iter().map(|d| ms(*d)).collect::<Vec<_>>()
        ),
    );

    // delete all 401 at once; kubectl deletes them one by one, so poll the ConfigMap meanwhile
    let t0 = Instant::now();
    let deleter = {
        let label = label.clone();
        std::thread::spawn(move || {
            let out = kubectl_ok(
                &[
                    "delete",
                    "httproute,agentgatewaybackend",
                    "-n",
                    NS,
                    "-l",
                    &label,
                    "--wait=false",
                ],
                None,
            );
            (Instant::now(), out.lines().count())
        })
    };
    wait_for(
        "the ConfigMap to drop the 200 routes",
        secs(180),
        Duration::from_millis(250),
        || {
            let text = configmap_text(NS, &format!("{GATEWAY}-config"));
            let n = (0..SCALE)
                .filter(|i| text.contains(&format!("scale-{i:03}")))
                .count();
            if n == 0 {
                Ok(())
            } else {
                Err(format!("{n} left"))
            }
        },
    );
    let clean = t0.elapsed();
    let (returned, deleted) = deleter.join().expect("kubectl delete thread");
    figure(
        "s5",
        format!(
            "delete of the {deleted} objects: kubectl returned after {} ms; ConfigMap clean after {} ms",
            ms(returned.duration_since(t0)),
            ms(clean)
        ),
    );
    assert!(
        problems.is_empty(),
        "prefixed routes are not served as the tutorial's clients expect:\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------- 8

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

/// Counts of the load: plain ok/failed, streams ok/failed.
#[derive(Default)]
struct RollCounters {
    plain_ok: AtomicU64,
    plain_failed: AtomicU64,
    stream_ok: AtomicU64,
    stream_failed: AtomicU64,
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
                }
                sent
            })
        })
        .collect();
    std::thread::sleep(secs(3));

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
