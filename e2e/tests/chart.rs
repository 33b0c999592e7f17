//! s7: the Helm chart, everything in-cluster as a user has it: `helm install` with the locally
//! loaded images, two operator replicas (leader election) running under the chart's
//! ServiceAccount, the webhooks reached through their Service, the whole tutorial through
//! `kubectl port-forward deployment/agentgateway-proxy`, an empty `kubectl diff` of the rendered
//! chart, a `helm upgrade` under steady load with no failed request, and `helm uninstall`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use e2e::admission::wait_refused;
use e2e::chart::*;
use e2e::*;

const INVALID: &str = "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: broken
  namespace: agentgateway-system
spec:
  ai:
    provider:
      host: host.docker.internal
      port: 70000
      openai:
        model: m
";

const TRAFFIC: &str = "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: steady
  namespace: agentgateway-system
spec:
  ai:
    provider:
      host: host.docker.internal
      port: 8090
      openai:
        model: gemma-4-12b-it-Q5_K_M.gguf
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: steady
  namespace: agentgateway-system
spec:
  parentRefs:
  - name: agentgateway-proxy
  rules:
  - backendRefs:
    - name: steady
      group: agentgateway.dev
      kind: AgentgatewayBackend
";

/// Uninstalls the release when the scenario ends, also when it fails: a webhook configuration
/// with `failurePolicy: Fail` and no operator behind it would block every later scenario.
struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        if std::thread::panicking() {
            dump_failure_state();
        }
        let _ = helm(&["uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "2m"]);
    }
}

fn operator_pods() -> Vec<String> {
    kubectl_ok(
        &[
            "get",
            "pods",
            "-n",
            NS,
            "-l",
            "app.kubernetes.io/component=operator",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
        ],
        None,
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

fn operator_logs() -> String {
    let mut text = String::new();
    for pod in operator_pods() {
        let out = kubectl(&["logs", "-n", NS, &pod], None);
        text.push_str(&out.stdout);
    }
    text
}

/// A pull Secret that does not exist: the proxy pods name it (chart value -> operator flag -> pod
/// spec) and still start, since the kubelet only records an event for a missing one (and pulls
/// nothing here: pullPolicy Never).
const PROXY_PULL_SECRET: &str = "agentgateway-e2e-pull";

/// A namespace the chart's operator is not given: a Gateway there must stay untouched.
const OUTSIDE: &str = "s7-outside";

/// The values every install, upgrade and rendering of this scenario uses: the operator limited to
/// the release namespace (`operator.watchNamespaces`), its permissions a Role there.
fn scenario_values() -> Vec<String> {
    let mut values = e2e_image_values();
    values.push("--set".into());
    values.push(format!(
        "proxy.imagePullSecrets[0].name={PROXY_PULL_SECRET}"
    ));
    values.push("--set".into());
    values.push(format!("operator.watchNamespaces={{{NS}}}"));
    values
}

/// The operator works in the release namespace only: its ClusterRole holds no namespaced kind,
/// and a Gateway of the class in another namespace gets neither a proxy nor a status.
fn check_namespace_scope() {
    let cluster_role = kubectl_json(&["get", "clusterrole", "agentgateway-operator"]);
    let resources: Vec<String> = cluster_role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .flat_map(|r| r["resources"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    for namespaced in [
        "secrets",
        "configmaps",
        "deployments",
        "gateways",
        "httproutes",
    ] {
        assert!(
            !resources.iter().any(|r| r == namespaced),
            "the ClusterRole grants {namespaced} with operator.watchNamespaces set: {resources:?}"
        );
    }
    let role = kubectl_json(&["get", "role", "agentgateway-operator-workloads", "-n", NS]);
    assert!(role["rules"].to_string().contains("\"secrets\""), "{role}");
    kubectl_ok(&["create", "namespace", OUTSIDE], None);
    apply(&format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: outside, namespace: {OUTSIDE}}}
spec:
  gatewayClassName: agentgateway
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
"
    ));
    // The tutorial's Gateway was programmed within seconds; this one stays untouched for as long.
    hold_for(
        "the Gateway outside the watched namespaces stays untouched",
        secs(10),
        poll(),
        || {
            let gateway = get_json(&["gateway", "outside", "-n", OUTSIDE]).ok_or("no Gateway")?;
            if !gateway["status"]["conditions"].as_array().is_none_or(|c| {
                c.iter()
                    .all(|c| c["reason"] == "Pending" && c["message"] == "Waiting for controller")
            }) {
                return Err(format!("status written: {}", gateway["status"]));
            }
            // An empty list prints nothing with --ignore-not-found.
            match get_json(&["deployment", "-n", OUTSIDE]) {
                None => Ok(()),
                Some(list) if list["items"].as_array().is_some_and(Vec::is_empty) => Ok(()),
                Some(list) => Err(format!("a proxy was created: {list}")),
            }
        },
    );
    delete_namespace(OUTSIDE);
    say(
        "operator.watchNamespaces: ClusterRole without namespaced kinds; a Gateway elsewhere untouched for 10 s",
    );
}

fn helm_install_args(extra: &[&str]) -> Vec<String> {
    let chart = env().workspace.join(CHART_DIR);
    let mut args: Vec<String> = vec![
        "upgrade".into(),
        "--install".into(),
        RELEASE.into(),
        chart.to_string_lossy().into_owned(),
        "-n".into(),
        NS.into(),
        "--create-namespace".into(),
        "--wait".into(),
        "--timeout".into(),
        "5m".into(),
    ];
    args.extend(scenario_values());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn rendered_chart(extra: &[&str]) -> String {
    let chart = env().workspace.join(CHART_DIR);
    let mut args: Vec<String> = vec![
        "template".into(),
        RELEASE.into(),
        chart.to_string_lossy().into_owned(),
        "-n".into(),
        NS.into(),
        "--kube-version".into(),
        "1.20.2".into(),
    ];
    args.extend(scenario_values());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    helm(&refs).expect_ok("helm template")
}

#[test]
#[ignore = "needs the e2e cluster: bash e2e/run.sh"]
fn s7_helm_chart() {
    // A clean slate: the other scenarios run the operator as a local process and create the
    // GatewayClass themselves; the chart must own everything it installs.
    let _ = helm(&["uninstall", RELEASE, "-n", NS, "--wait"]);
    delete_namespace(NS);
    delete_namespace(OUTSIDE);
    kubectl_ok(
        &[
            "delete",
            "gatewayclass",
            "agentgateway",
            "--ignore-not-found",
        ],
        None,
    );
    install_crds();
    ensure_extra_hosts();
    let _mock = start_mock_llm("s7-mock-llm", &format!("{NODE_IP}:{MOCK_PORT}"), MODEL, &[]);

    // ---- helm install
    let args = helm_install_args(&[]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    eprintln!("$ helm {}", refs.join(" "));
    let t = Instant::now();
    let _release = Release;
    let out = helm(&refs);
    eprint!("{}{}", out.stdout, out.stderr);
    assert!(out.ok, "helm install failed");
    figure("s7", format!("helm install --wait: {} ms", ms(t.elapsed())));
    assert!(
        out.stdout.contains("kubectl apply") || out.stdout.contains("AgentgatewayBackend"),
        "NOTES.txt should show the tutorial's next command:\n{}",
        out.stdout
    );

    // Two operator replicas Ready, one holds the Lease; the webhook configurations trust the CA.
    let pods = wait_for("2 Ready operator pods", secs(120), poll(), || {
        let d = get_json(&[
            "deployment",
            "-n",
            NS,
            "-l",
            "app.kubernetes.io/component=operator",
        ])
        .ok_or("no deployment")?;
        let ready = d["items"][0]["status"]["readyReplicas"]
            .as_i64()
            .unwrap_or(0);
        if ready == 2 {
            Ok(operator_pods())
        } else {
            Err(format!("{ready} ready"))
        }
    });
    let pod = kubectl_json(&["get", "pod", "-n", NS, &pods[0]]);
    assert_eq!(
        pod["spec"]["serviceAccountName"].as_str(),
        Some("agentgateway-operator"),
        "the operator must run as the chart's ServiceAccount"
    );
    let holder = wait_for("the operator Lease is held", secs(60), poll(), || {
        let lease = get_json(&["lease", "agentgateway-operator", "-n", NS]).ok_or("no lease")?;
        lease["spec"]["holderIdentity"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no holder".to_owned())
    });
    assert!(
        pods.contains(&holder),
        "Lease holder {holder} is not one of {pods:?}"
    );
    wait_for(
        "caBundle in both webhook configurations",
        secs(60),
        poll(),
        || match e2e::admission::ca_bundles("agentgateway-webhook") {
            (Some(v), Some(m)) if !v.is_empty() && v == m => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let took = wait_proxy_ready(NS, GATEWAY, secs(180));
    say(format!(
        "proxy Deployment {GATEWAY} Ready ({} ms)",
        ms(took)
    ));
    let proxy_pod = kubectl_json(&["get", "deployment", GATEWAY, "-n", NS]);
    let security = &proxy_pod["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(security["runAsNonRoot"], true, "{security}");
    let pull = &proxy_pod["spec"]["template"]["spec"]["imagePullSecrets"];
    assert_eq!(
        pull,
        &serde_json::json!([{ "name": PROXY_PULL_SECRET }]),
        "proxy.imagePullSecrets should reach the proxy pods"
    );

    // ---- the webhook answers through its Service
    let refused = wait_refused(INVALID, secs(30));
    eprint!("$ kubectl apply -f broken.yaml\n{refused}");
    assert!(
        refused.contains("spec.ai.provider.port: must be between 1 and 65535"),
        "{refused}"
    );

    // ---- the tutorial, verbatim, with the operator limited to the release namespace
    replay_tutorial("s7");
    check_namespace_scope();

    // ---- GitOps: nothing the operator or the webhooks wrote differs from the rendered chart
    let rendered = rendered_chart(&[]);
    let diff = kubectl(&["diff", "-f-"], Some(&rendered));
    assert!(
        diff.ok && diff.stdout.trim().is_empty(),
        "kubectl diff of the rendered chart is not empty:\n{}{}",
        diff.stdout,
        diff.stderr
    );
    say("kubectl diff of the rendered chart: empty");

    // ---- helm upgrade under steady load: traffic through the proxy and admissions
    apply(TRAFFIC);
    let mut pf = PortForward::start(NS, "deployment/agentgateway-proxy", free_port(), 80);
    wait_served(
        &mut pf,
        "the steady route",
        "/v1/chat/completions",
        "steady",
        secs(30),
        |r| check_completion(r, MODEL, "steady"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Arc<[AtomicU64; 4]> = Arc::new(Default::default()); // chat ok/failed, admission ok/failed
    let traffic = {
        let (stop, counters) = (stop.clone(), counters.clone());
        let port = pf.local_port;
        std::thread::spawn(move || {
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match chat(port, "/v1/chat/completions", "steady") {
                    Ok(r) if r.status == 200 => counters[0].fetch_add(1, Ordering::Relaxed),
                    other => {
                        errors.push(format!("{:?}", other.map(|r| (r.status, r.body))));
                        counters[1].fetch_add(1, Ordering::Relaxed)
                    }
                };
                std::thread::sleep(Duration::from_millis(20));
            }
            errors
        })
    };
    let admissions = {
        let (stop, counters) = (stop.clone(), counters.clone());
        std::thread::spawn(move || {
            let mut errors = Vec::new();
            let backend = TRAFFIC
                .split("---")
                .next()
                .unwrap()
                .replace("name: steady", "name: probe");
            while !stop.load(Ordering::Relaxed) {
                let out = kubectl(
                    &["create", "--dry-run=server", "-f-", "-o", "name"],
                    Some(&backend),
                );
                if out.ok {
                    counters[2].fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.push(out.stderr);
                    counters[3].fetch_add(1, Ordering::Relaxed);
                }
            }
            errors
        })
    };
    std::thread::sleep(secs(3));
    let args = helm_install_args(&["--set", "operator.logLevel=debug"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    eprintln!("$ helm {}", refs.join(" "));
    let t = Instant::now();
    let out = helm(&refs);
    eprint!("{}", out.stderr);
    assert!(out.ok, "helm upgrade failed:\n{}", out.stderr);
    kubectl_ok(
        &[
            "rollout",
            "status",
            "deployment/agentgateway-operator",
            "-n",
            NS,
            "--timeout=180s",
        ],
        None,
    );
    let rolled = t.elapsed();
    std::thread::sleep(secs(5));
    stop.store(true, Ordering::Relaxed);
    let chat_errors = traffic.join().unwrap();
    let admission_errors = admissions.join().unwrap();
    let [chat_ok, chat_failed, adm_ok, adm_failed] =
        [0, 1, 2, 3].map(|i| counters[i].load(Ordering::Relaxed));
    figure(
        "s7",
        format!(
            "helm upgrade (operator roll, {} ms): requests {chat_ok} ok / {chat_failed} failed, \
             admissions {adm_ok} ok / {adm_failed} failed",
            ms(rolled)
        ),
    );
    // The old pods finish their shutdown delay (webhooks keep answering) and go.
    let new_pods = wait_for("only the new operator pods left", secs(90), poll(), || {
        let now = operator_pods();
        if now.len() == 2 && now.iter().all(|p| !pods.contains(p)) {
            Ok(now)
        } else {
            Err(format!("{pods:?} -> {now:?}"))
        }
    });
    say(format!("operator rolled: {pods:?} -> {new_pods:?}"));
    assert_eq!(
        chat_failed, 0,
        "requests failed during the upgrade: {chat_errors:?}"
    );
    assert_eq!(
        adm_failed, 0,
        "admissions failed during the upgrade: {admission_errors:?}"
    );
    assert!(
        chat_ok > 20 && adm_ok > 5,
        "too little load: {chat_ok} requests, {adm_ok} admissions"
    );
    drop(pf);

    // Least privilege is enough: no request of the operator was forbidden.
    let logs = operator_logs();
    // The API server's RBAC denial reads "<resource> ... is forbidden: User ... cannot <verb>".
    let denied: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("is forbidden"))
        .collect();
    assert!(
        denied.is_empty(),
        "the operator was refused something by RBAC:\n{}",
        denied.join("\n")
    );

    // ---- helm uninstall: nothing of ours is left but the CRDs
    kubectl_ok(&["delete", "-f-", "--ignore-not-found"], Some(TRAFFIC));
    eprintln!("$ helm uninstall {RELEASE} -n {NS}");
    let t = Instant::now();
    helm(&["uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "2m"])
        .expect_ok("helm uninstall");
    wait_for(
        "nothing of ours left after helm uninstall",
        GC_TIMEOUT,
        poll(),
        || {
            let mut left = namespace_leftovers();
            left.extend(cluster_leftovers());
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    );
    figure(
        "s7",
        format!(
            "helm uninstall: everything gone after {} ms",
            ms(t.elapsed())
        ),
    );
    assert!(get_json(&["crd", "agentgatewaybackends.agentgateway.dev"]).is_some());
}
