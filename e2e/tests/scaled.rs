//! Proxies sized and scaled per Gateway on the real cluster (`#[ignore]`d; `e2e/run.sh` runs it):
//! a Gateway whose `spec.infrastructure.parametersRef` names an AgentgatewayParameters with
//! autoscaling (`minReplicas: 2`), a PodDisruptionBudget, pod labels and resources. The operator
//! creates the HPA and the PDB (the versions Kubernetes 1.20 serves), the HPA brings the
//! Deployment to two pods and both serve; after the HPA changes `replicas` the operator leaves it
//! alone; deleting a pod under load loses no request.

use std::time::Instant;

use e2e::*;
use serde_json::Value;

const SCALED_NS: &str = "e2e-scaled";
const SCALED_GW: &str = "scaled-gw";
const SCALED_MODEL: &str = "scaled-model";
/// A slow model server (`host.docker.internal:8094`), so requests are in flight when the pod goes.
const SCALED_MOCK_PORT: u16 = 8094;
const SCALED_MOCK_ARGS: &[&str] = &["--chunk-delay-ms", "150", "--fault", "delay-ms=200"];
const SCALED_REPLY: &str = "one two three four five six";
const TIER_LABEL: &str = "e2e.agentgateway.dev/tier";

fn parameters_yaml(min_replicas: u32) -> String {
    format!(
        "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayParameters
metadata: {{name: scaled, namespace: {SCALED_NS}}}
spec:
  autoscaling: {{minReplicas: {min_replicas}, maxReplicas: 4, targetCPUUtilizationPercentage: 80}}
  podDisruptionBudget: {{minAvailable: 1}}
  resources:
    requests: {{cpu: 20m, memory: 32Mi}}
    limits: {{cpu: 500m, memory: 128Mi}}
  pod:
    labels: {{{TIER_LABEL}: scaled}}
    annotations: {{e2e.agentgateway.dev/sized-by: parameters}}
"
    )
}

fn scaled_manifests() -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {SCALED_GW}, namespace: {SCALED_NS}, labels: {{{TEST_LABEL}: 'true'}}}}
spec:
  gatewayClassName: agentgateway
  infrastructure:
    parametersRef: {{group: agentgateway.dev, kind: AgentgatewayParameters, name: scaled}}
  listeners:
  - {{name: http, port: 80, protocol: HTTP}}
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {{name: scaled, namespace: {SCALED_NS}}}
spec:
  ai:
    provider: {{host: host.docker.internal, port: {SCALED_MOCK_PORT}, openai: {{model: {SCALED_MODEL}}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: scaled, namespace: {SCALED_NS}}}
spec:
  parentRefs: [{{name: {SCALED_GW}}}]
  rules:
  - backendRefs: [{{name: scaled, group: agentgateway.dev, kind: AgentgatewayBackend}}]
"
    )
}

/// Whether `object` is owned (controller reference) by the Gateway.
fn owned_by_gateway(object: &Value) -> bool {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|o| o["kind"] == "Gateway" && o["name"] == SCALED_GW && o["controller"] == true)
}

/// The Deployment's `spec.replicas`.
fn replicas() -> Option<u64> {
    get_json(&["deployment", SCALED_GW, "-n", SCALED_NS])?["spec"]["replicas"].as_u64()
}

/// Waits until the HPA has set the Deployment to `want` replicas and all of them are Ready.
fn wait_scaled_to(want: u64) {
    wait_for(
        &format!("the HPA to set {want} replicas"),
        secs(120),
        poll(),
        || match replicas() {
            Some(n) if n == want => Ok(()),
            other => Err(format!("replicas {other:?}")),
        },
    );
    wait_proxy_ready(SCALED_NS, SCALED_GW, secs(180));
}

/// The field managers that own `spec.replicas` of the Deployment.
fn replicas_managers() -> Vec<String> {
    let dep = kubectl_json(&[
        "get",
        "deployment",
        SCALED_GW,
        "-n",
        SCALED_NS,
        "--show-managed-fields",
    ]);
    dep["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| !m["fieldsV1"]["f:spec"]["f:replicas"].is_null())
        .filter_map(|m| m["manager"].as_str().map(str::to_owned))
        .collect()
}

#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s18_parameters_autoscale_the_proxies_and_a_pod_deletion_loses_nothing() {
    let _fx = Fixture::up("s18");
    let _mock = start_mock_llm(
        "s18-mock-llm",
        &format!("{NODE_IP}:{SCALED_MOCK_PORT}"),
        SCALED_MODEL,
        SCALED_MOCK_ARGS,
    );
    let mut cleanup = Cleanup::new();
    cleanup.namespace(SCALED_NS);
    create_test_namespace(SCALED_NS);
    apply(&parameters_yaml(2));
    apply(&scaled_manifests());

    // The HPA and the PDB, owned by the Gateway.
    let hpa = wait_for("the HPA", secs(60), poll(), || {
        get_json(&["hpa", SCALED_GW, "-n", SCALED_NS]).ok_or_else(|| "no HPA".to_string())
    });
    assert!(owned_by_gateway(&hpa), "{hpa}");
    assert_eq!(hpa["spec"]["minReplicas"], 2, "{hpa}");
    assert_eq!(hpa["spec"]["maxReplicas"], 4, "{hpa}");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], SCALED_GW, "{hpa}");
    let pdb = wait_for("the PDB", secs(60), poll(), || {
        get_json(&["pdb", SCALED_GW, "-n", SCALED_NS]).ok_or_else(|| "no PDB".to_string())
    });
    assert!(owned_by_gateway(&pdb), "{pdb}");
    assert_eq!(pdb["spec"]["minAvailable"], 1, "{pdb}");
    say(format!(
        "s18: HPA {} and PDB {} owned by the Gateway",
        hpa["apiVersion"], pdb["apiVersion"]
    ));

    // The HPA brings the Deployment to minReplicas (no metrics needed for that), both serve.
    let t0 = Instant::now();
    wait_scaled_to(2);
    say(format!(
        "s18: two Ready proxy pods {} ms after the apply",
        ms(t0.elapsed())
    ));
    let dep = kubectl_json(&["get", "deployment", SCALED_GW, "-n", SCALED_NS]);
    let template = &dep["spec"]["template"];
    assert_eq!(
        template["metadata"]["labels"][TIER_LABEL], "scaled",
        "{template}"
    );
    assert_eq!(
        template["metadata"]["annotations"]["e2e.agentgateway.dev/sized-by"], "parameters",
        "{template}"
    );
    let resources = &template["spec"]["containers"][0]["resources"];
    assert_eq!(resources["requests"]["cpu"], "20m", "{resources}");
    assert_eq!(resources["limits"]["memory"], "128Mi", "{resources}");
    let pods = kubectl_json(&["get", "pods", "-n", SCALED_NS, "-l", &label_selector(&dep)]);
    let ips: Vec<String> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ips.len(), 2, "{ips:?}");
    for ip in ips {
        let pod = LoadTarget {
            service: format!("{ip}:80").parse().expect("pod address"),
            host: format!("{SCALED_GW}.{SCALED_NS}"),
            model: SCALED_MODEL,
            reply: SCALED_REPLY,
        };
        in_cluster_thread(move || {
            wait_for(&format!("pod {ip} serves"), secs(60), poll(), || {
                pod.request(false)
            });
        })
        .join()
        .expect("a pod check");
    }
    say("s18: both proxy pods serve");

    // The HPA changes replicas (the parameters raise minReplicas to 3); a reconcile of the
    // Gateway afterwards (a route change recompiles it) leaves the HPA's count alone.
    apply(&parameters_yaml(3));
    wait_scaled_to(3);
    let generation =
        |cm: &Value| cm["metadata"]["annotations"]["agentgateway.dev/config-generation"].clone();
    let before = generation(&kubectl_json(&[
        "get",
        "configmap",
        &format!("{SCALED_GW}-config"),
        "-n",
        SCALED_NS,
    ]));
    kubectl_ok(
        &[
            "patch",
            "httproute",
            "scaled",
            "-n",
            SCALED_NS,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"hostnames":["scaled-gw.e2e-scaled"]}}"#,
        ],
        None,
    );
    wait_for(
        "the Gateway reconciled (new config)",
        secs(60),
        poll(),
        || {
            let cm = kubectl_json(&[
                "get",
                "configmap",
                &format!("{SCALED_GW}-config"),
                "-n",
                SCALED_NS,
            ]);
            (generation(&cm) != before)
                .then_some(())
                .ok_or_else(|| "same config".to_string())
        },
    );
    hold_for(
        "replicas stay the HPA's",
        secs(5),
        secs(1),
        || match replicas() {
            Some(3) => Ok(()),
            other => Err(format!("replicas {other:?}")),
        },
    );
    // The operator's own manager never owns it under autoscaling (its handover manager may
    // co-own the HPA's value, which changes nothing; Kubernetes 1.20 records no manager for
    // changes through the scale subresource, the HPA's).
    let managers = replicas_managers();
    assert!(
        !managers.iter().any(|m| m == "agentgateway-operator"),
        "the operator still owns spec.replicas: {managers:?}"
    );
    say(format!(
        "s18: spec.replicas owned by {managers:?} after a reconcile"
    ));

    // One pod deleted under load: every request through the Service succeeds.
    let target = LoadTarget::service(SCALED_NS, SCALED_GW, 80, SCALED_MODEL, SCALED_REPLY);
    target.warm_up(20, secs(90));
    let load = Load::start(&target, 4);
    let victim = deployment_pods(SCALED_NS, SCALED_GW)
        .into_iter()
        .next()
        .expect("a pod");
    let t0 = Instant::now();
    kubectl_show(
        &[
            "delete",
            "pod",
            &victim,
            "-n",
            SCALED_NS,
            "--wait=true",
            "--timeout=120s",
        ],
        None,
    );
    let gone = t0.elapsed();
    wait_proxy_ready(SCALED_NS, SCALED_GW, secs(120));
    let replaced = t0.elapsed();
    // Paces the load generator, which keeps running for 5 s after the pod is gone and replaced,
    // so requests routed on stale endpoints are part of the sample; nothing to poll for.
    std::thread::sleep(secs(5));
    let report = load.finish();
    let [plain_ok, plain_failed, stream_ok, stream_failed] = report.counts;
    figure(
        "s18",
        format!(
            "minReplicas 2 (then 3) by an HPA; one of 3 proxy pods deleted under load through the Service: \
             {} requests in {} ms, completions {plain_ok} ok / {plain_failed} failed, streams {stream_ok} ok / \
             {stream_failed} failed; pod gone after {} ms, replaced and Ready after {} ms",
            report.sent,
            ms(report.elapsed),
            ms(gone),
            ms(replaced)
        ),
    );
    report.assert_none_lost("the pod deletion", 10, 3);
    drop(cleanup);
}
