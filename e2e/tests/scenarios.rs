//! The end-to-end scenarios, against the real 1.20 cluster `e2e/run.sh` brings up: the CRDs (s0),
//! the tutorial (s1), secretRef auth (s2), garbage collection (s3) and scale (s5). The operator's
//! restart and leader election (s4) are in `operator_lifecycle.rs`, the rolling restart under load
//! (s8) in `rolling_restart.rs`; every file under `tests/` is a test binary `run.sh` runs.
//! Run serially (`--test-threads=1`): they share the cluster, the Gateway `agentgateway-proxy` and
//! the model server address. Each cleans up what it created (also when it fails).
//! They are `#[ignore]`d so that `cargo test --workspace` skips them; `e2e/run.sh` runs them with
//! `--ignored`.
//!
//! Adding a scenario: one `#[test]` per behaviour, named `sN[a-z]_...` (run filters match the
//! prefix), starting from its own [`Fixture::up`] (a fixture kept in a static would never be
//! dropped, leaving its operator running into the next test), waiting with `wait_for`,
//! `wait_stable` or `hold_for` rather than sleeping.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use agentgateway_mock_llm::MockLlmConfig;
use e2e::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------- 0

/// The namespace of the s0 objects.
const CRDS_NS: &str = "e2e-crds";

/// What s0b and s0c start from: the CRDs installed (as every [`Fixture`] does) and the empty test
/// namespace [`CRDS_NS`], deleted (and waited for) when the returned guard drops.
fn crds_namespace() -> Cleanup {
    install_crds();
    let mut cleanup = Cleanup::new();
    cleanup.namespace(CRDS_NS);
    create_test_namespace(CRDS_NS);
    cleanup
}

/// The generated Gateway API CRDs install on 1.20 with server-side and with plain `kubectl apply`,
/// and v1 and v1beta1 (and our agentgateway.dev/v1alpha1) are served.
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s0a_gateway_api_crds_apply_and_serve_on_kubernetes_1_20() {
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
    say(
        "s0a: Gateway API CRDs accepted (server-side and client-side apply); v1 and v1beta1 served",
    );
}

/// The tutorial's HTTPRoute (AgentgatewayBackend backendRefs with group, kind and namespace) and a
/// route with empty-string and defaulted fields are stored intact, read as v1 and as v1beta1; the
/// generated printer columns print.
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s0b_httproutes_stored_intact_on_kubernetes_1_20() {
    let ns = CRDS_NS;
    let cleanup = crds_namespace();
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
    // Printer columns of the generated CRDs.
    kubectl_show(&["get", "httproute", "-n", ns], None);
    say("s0b: HTTPRoutes stored intact (v1 and v1beta1)");
    drop(cleanup);
}

/// A ReferenceGrant applied as v1beta1 (what agentgateway reads) is stored with the core group ""
/// intact (read as v1).
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s0c_reference_grant_v1beta1_on_kubernetes_1_20() {
    let ns = CRDS_NS;
    let cleanup = crds_namespace();
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
    say("s0c: ReferenceGrant v1beta1 stored intact");
    drop(cleanup);
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
