//! Every path from "the operator wanted to change a proxy" to "the proxy serves it" either
//! succeeds or shows in status: objects of the same name that the Gateway does not control are
//! never taken over (`Programmed=False`, `ResourceConflict`), a write the API server refuses is
//! `ApplyFailed` (on the Gateway and on its routes), and both heal when the cause goes.
//! Against the real 1.20 cluster, like `scenarios.rs` (`#[ignore]`d; `e2e/run.sh` runs them).

use std::time::{Duration, Instant};

use e2e::*;

/// `(status, reason, message)` of the Gateway's `Programmed` condition.
fn programmed(ns: &str, gateway: &str) -> Option<(String, String, String)> {
    condition(&get_json(&["gateway", gateway, "-n", ns])?, "Programmed")
}

/// Waits until the Gateway's `Programmed` has `status` and `reason`; returns the message.
fn wait_programmed(
    ns: &str,
    gateway: &str,
    status: &str,
    reason: &str,
    timeout: Duration,
) -> String {
    wait_for(
        &format!("Gateway {ns}/{gateway} Programmed={status} ({reason})"),
        timeout,
        poll(),
        || match programmed(ns, gateway) {
            Some((s, r, m)) if s == status && r == reason => Ok(m),
            other => Err(format!("{other:?}")),
        },
    )
}

/// The reasons of the Warning events recorded on the Gateway.
fn event_reasons(ns: &str, gateway: &str) -> Vec<String> {
    let events = kubectl_json(&[
        "get",
        "events.events.k8s.io",
        "-n",
        ns,
        "--field-selector",
        &format!("regarding.name={gateway},regarding.kind=Gateway"),
    ]);
    events["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|e| e["reason"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn resource_version(kind: &str, name: &str, ns: &str) -> String {
    get_json(&[kind, name, "-n", ns]).map_or_else(String::new, |o| {
        o["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    })
}

/// A RoleBinding `a`, a Secret `b-credentials` and a ConfigMap `c-config` exist before the
/// Gateways `a`, `b` and `c`: none is modified (the RoleBinding keeps its roleRef and subjects,
/// the Secret stays unreadable to the proxy), each Gateway says `Programmed=False
/// ResourceConflict` naming the object, with an event; once the object is deleted, the Gateway is
/// programmed and served.
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s9_foreign_objects_are_never_taken_over() {
    let _fx = Fixture::up("s9");
    let ns = "e2e-foreign";
    let mut cleanup = Cleanup::new();
    cleanup.namespace(ns);
    create_test_namespace(ns);
    apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: a, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}}
subjects:
- {{kind: User, name: jane, apiGroup: rbac.authorization.k8s.io}}
---
apiVersion: v1
kind: Secret
metadata: {{name: b-credentials, namespace: {ns}}}
stringData: {{password: hunter2}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: c-config, namespace: {ns}}}
data: {{owner: someone else}}
"
    ));
    let foreign = [
        ("a", "rolebinding", "a", "RoleBinding"),
        ("b", "secret", "b-credentials", "Secret"),
        ("c", "configmap", "c-config", "ConfigMap"),
    ];
    let versions: Vec<String> = foreign
        .iter()
        .map(|(_, kind, name, _)| resource_version(kind, name, ns))
        .collect();
    let t0 = Instant::now();
    for (gateway, ..) in foreign {
        apply(&gateway_yaml(ns, gateway));
    }
    for (gateway, _, name, kind) in foreign {
        let message = wait_programmed(ns, gateway, "False", "ResourceConflict", secs(60));
        assert!(
            message.contains(&format!("{kind} {ns}/{name}")),
            "the message names the object: {message}"
        );
        let reasons = wait_for("the ResourceConflict event", secs(30), poll(), || {
            let reasons = event_reasons(ns, gateway);
            if reasons.iter().any(|r| r == "ResourceConflict") {
                Ok(reasons)
            } else {
                Err(format!("{reasons:?}"))
            }
        });
        say(format!("Gateway {gateway}: {message}; events {reasons:?}"));
    }
    figure(
        "s9",
        format!(
            "3 Gateways over a foreign RoleBinding, Secret and ConfigMap -> all Programmed=False ResourceConflict after {} ms",
            ms(t0.elapsed())
        ),
    );
    // Nothing is written to them, however often the operator retries meanwhile: checked all
    // through 3 s.
    hold_for(
        "the foreign objects stay untouched",
        secs(3),
        poll(),
        || {
            for ((_, kind, name, _), version) in foreign.iter().zip(&versions) {
                if &resource_version(kind, name, ns) != version {
                    return Err(format!("{kind} {name} was modified"));
                }
            }
            Ok(())
        },
    );
    let binding = kubectl_json(&["get", "rolebinding", "a", "-n", ns]);
    assert_eq!(binding["roleRef"]["name"], "view");
    assert_eq!(binding["subjects"][0]["name"], "jane");
    assert!(binding["metadata"]["ownerReferences"].is_null());
    let secret = kubectl_json(&["get", "secret", "b-credentials", "-n", ns]);
    assert!(secret["metadata"]["ownerReferences"].is_null());
    // The proxy of `b` may read its Secret only through its Role; the Role exists (it comes
    // first), but no proxy runs: the Deployment comes after the Secret.
    assert!(
        get_json(&["deployment", "b", "-n", ns]).is_none(),
        "a proxy runs next to a foreign credentials Secret"
    );

    // The cause goes: each Gateway is programmed and its proxy serves.
    let t0 = Instant::now();
    for (_, kind, name, _) in foreign {
        kubectl_ok(&["delete", kind, name, "-n", ns], None);
    }
    for (gateway, ..) in foreign {
        wait_programmed(ns, gateway, "True", "Programmed", secs(180));
    }
    figure(
        "s9",
        format!(
            "foreign objects deleted -> all 3 Gateways Programmed=True in {} ms (retries back off from 1 s)",
            ms(t0.elapsed())
        ),
    );
    let binding = kubectl_json(&["get", "rolebinding", "a", "-n", ns]);
    assert_eq!(binding["roleRef"]["name"], "a");
    assert_eq!(binding["subjects"][0]["name"], "a");
}

/// A namespace whose ResourceQuota allows no more ConfigMaps: the Gateway's config cannot be
/// delivered. The Gateway says `Programmed=False ApplyFailed` with the API server's answer, its
/// route says so too, retries back off (a handful of writes, not several per second), and
/// lifting the quota programs it.
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s10_refused_delivery_shows_in_status_and_heals() {
    let fx = Fixture::up("s10");
    let ns = "e2e-quota";
    let gw = "quota-gw";
    let mut cleanup = Cleanup::new();
    cleanup.namespace(ns);
    create_test_namespace(ns);
    // kube-root-ca.crt is the namespace's one ConfigMap.
    wait_for("kube-root-ca.crt", secs(30), poll(), || {
        get_json(&["configmap", "kube-root-ca.crt", "-n", ns])
            .map(|_| ())
            .ok_or_else(|| "absent".to_owned())
    });
    apply(&format!(
        "apiVersion: v1
kind: ResourceQuota
metadata: {{name: no-more-configmaps, namespace: {ns}}}
spec:
  hard: {{configmaps: \"1\"}}
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {{name: llm, namespace: {ns}}}
spec:
  ai:
    provider: {{host: host.docker.internal, port: {MOCK_PORT}, openai: {{model: quota-model}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: llm, namespace: {ns}}}
spec:
  parentRefs: [{{name: {gw}}}]
  rules:
  - backendRefs: [{{name: llm, group: agentgateway.dev, kind: AgentgatewayBackend}}]
"
    ));
    let writes_before = metric_total(&fx, "ConfigMap");
    apply(&gateway_yaml(ns, gw));
    let message = wait_programmed(ns, gw, "False", "ApplyFailed", secs(60));
    assert!(
        message.contains(&format!("ConfigMap {ns}/{gw}-config")) && message.contains("quota"),
        "the message names the ConfigMap and the API server's answer: {message}"
    );
    let route = wait_for("the route's Programmed=False", secs(30), poll(), || {
        let route = kubectl_json(&["get", "httproute", "llm", "-n", ns]);
        let parent = route["status"]["parents"][0].clone();
        match condition(&parent, "Programmed") {
            Some((s, r, m)) if s == "False" && r == "ApplyFailed" => Ok(m),
            other => Err(format!("{other:?}")),
        }
    });
    say(format!("route: {route}"));
    assert!(event_reasons(ns, gw).iter().any(|r| r == "ApplyFailed"));
    // Backoff: over 12 s, attempts at about 1, 2, 4 and 8 s after the first.
    let failures = || {
        let metrics = fx.operator.metrics().unwrap_or_default();
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("agentgateway_operator_reconcile_errors_total")
                    && l.contains("controller=\"gateway\"")
                    && l.contains("ApplyFailed")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let before = failures();
    // A measurement window, not a wait: how many attempts the backoff allows in 12 s.
    std::thread::sleep(Duration::from_secs(12));
    let during = failures() - before;
    figure(
        "s10",
        format!("ConfigMap refused by a quota: {during} failed Gateway reconciles in 12 s"),
    );
    assert!(during <= 6.0, "{during} attempts in 12 s: not backing off");

    kubectl_ok(
        &["delete", "resourcequota", "no-more-configmaps", "-n", ns],
        None,
    );
    let t0 = Instant::now();
    wait_programmed(ns, gw, "True", "Programmed", secs(240));
    figure(
        "s10",
        format!("quota lifted -> Programmed=True in {} ms", ms(t0.elapsed())),
    );
    wait_for("the route's Programmed=True", secs(30), poll(), || {
        let route = kubectl_json(&["get", "httproute", "llm", "-n", ns]);
        match condition(&route["status"]["parents"][0], "Programmed") {
            Some((s, ..)) if s == "True" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert!(metric_total(&fx, "ConfigMap") > writes_before);
}

/// The operator's `writes_total` for `kind`.
fn metric_total(fx: &Fixture, kind: &str) -> f64 {
    let metrics = fx.operator.metrics().unwrap_or_default();
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("agentgateway_operator_writes_total")
                && l.contains(&format!("kind=\"{kind}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A Gateway whose `gatewayClassName` changes away from ours loses its proxy: the Deployment,
/// Service, ConfigMap, Secret and RBAC it controlled are deleted (no proxy keeps running with live
/// credentials under a class that is not ours); back in our class, it gets them again.
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s11_a_gateway_leaving_the_class_loses_its_proxy() {
    let _fx = Fixture::up("s11");
    let ns = "e2e-leave";
    let gw = "leave-gw";
    let mut cleanup = Cleanup::new();
    cleanup.namespace(ns);
    create_test_namespace(ns);
    apply(&gateway_yaml(ns, gw));
    wait_programmed(ns, gw, "True", "Programmed", secs(180));
    let owned = proxy_objects(gw);
    let t0 = Instant::now();
    apply(&gateway_yaml(ns, gw).replace(
        "gatewayClassName: agentgateway",
        "gatewayClassName: someone-elses",
    ));
    wait_gone(
        "the proxy objects of a Gateway that left",
        ns,
        &owned,
        secs(60),
    );
    figure(
        "s11",
        format!(
            "gatewayClassName changed away -> all 7 proxy objects deleted in {} ms",
            ms(t0.elapsed())
        ),
    );
    apply(&gateway_yaml(ns, gw));
    wait_programmed(ns, gw, "True", "Programmed", secs(180));
}

/// Backends and routes of the large scenario: each backend has three providers in two groups,
/// each route three matches, about 1.45 KB of compiled YAML per pair, so the 1,000 pairs the
/// issue asks for pass a ConfigMap's 1 MiB as YAML.
const LARGE: usize = 1000;
/// Parallel `kubectl create`s.
const CREATORS: usize = 4;

fn large_yaml(ns: &str, gateway: &str) -> String {
    use std::fmt::Write as _;
    let mut y = String::new();
    for i in 0..LARGE {
        let _ = write!(
            y,
            "---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {{name: large-{i:04}, namespace: {ns}}}
spec:
  ai:
    groups:
    - providers:
      - {{name: primary, host: host.docker.internal, port: {MOCK_PORT}, openai: {{model: large-model-{i:04}}}}}
      - {{name: secondary, host: host.docker.internal, port: {MOCK_PORT}, openai: {{model: large-model-{i:04}}}}}
    - providers:
      - {{name: fallback, host: host.docker.internal, port: {MOCK_PORT}, openai: {{model: large-model-{i:04}}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: large-{i:04}, namespace: {ns}}}
spec:
  parentRefs: [{{name: {gateway}}}]
  rules:
  - matches:
    - {{path: {{type: PathPrefix, value: /r{i}}}}}
    - {{path: {{type: PathPrefix, value: /tenants/tenant-{i:04}/v1}}, headers: [{{name: x-tenant, value: tenant-{i:04}}}]}}
    - {{path: {{type: Exact, value: /exact/route-{i:04}/v1/chat/completions}}, method: POST}}
    backendRefs: [{{name: large-{i:04}, group: agentgateway.dev, kind: AgentgatewayBackend}}]
"
        );
    }
    y
}

/// A JSON patch setting the model of each of a large backend's three providers.
fn edit_models(model: &str) -> String {
    let ops: Vec<String> = [(0, 0), (0, 1), (1, 0)]
        .iter()
        .map(|(group, provider)| {
            format!(
                "{{\"op\":\"replace\",\"path\":\"/spec/ai/groups/{group}/providers/{provider}/openai/model\",\"value\":\"{model}\"}}"
            )
        })
        .collect();
    format!("[{}]", ops.join(","))
}

/// How many items of `kind` in `ns` have `Accepted=True` (routes: on some parent).
fn accepted_count(kind: &str, ns: &str) -> usize {
    let list = kubectl_json(&["get", kind, "-n", ns]);
    list["items"].as_array().map_or(0, |items| {
        items
            .iter()
            .filter(|o| {
                let own = condition(o, "Accepted").is_some_and(|c| c.0 == "True");
                let parent = o["status"]["parents"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| condition(p, "Accepted").is_some_and(|c| c.0 == "True"))
                });
                own || parent
            })
            .count()
    })
}

/// The resident memory in MiB of the first process whose command line contains `needle`.
fn rss_mib_of(needle: &str) -> Option<u64> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .contains(needle)
        {
            return rss_mib(entry.file_name().to_str()?.parse().ok()?);
        }
    }
    None
}

/// 1,000 backends and 1,000 routes on one Gateway: the compiled config passes a ConfigMap's 1 MiB as
/// YAML and travels compressed; all are Accepted and served, the Gateway is Programmed
/// with the generation the ConfigMap names, a burst's ConfigMap writes are coalesced, and a single
/// backend edit is served quickly. Figures: times, sizes, writes, RSS.
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s12_a_config_past_one_mebibyte_reaches_the_proxy() {
    let fx = Fixture::up("s12");
    let ns = "e2e-large";
    let gw = "large-gw";
    let mut cleanup = Cleanup::new();
    cleanup.namespace(ns);
    create_test_namespace(ns);
    apply(&gateway_yaml(ns, gw));
    wait_programmed(ns, gw, "True", "Programmed", secs(180));
    // kubectl creates one object per request, one after the other; eight of them at once keep
    // the API server busy instead of waiting on round trips.
    let files: Vec<String> = large_yaml(ns, gw)
        .split("---\n")
        .filter(|doc| !doc.trim().is_empty())
        .collect::<Vec<_>>()
        .chunks(2 * LARGE / CREATORS)
        .enumerate()
        .map(|(i, docs)| {
            let file = env().artifacts.join(format!("large-{i}.yaml"));
            std::fs::write(&file, docs.join("---\n")).expect("write large-N.yaml");
            file.display().to_string()
        })
        .collect();
    let writes_before = metric_total(&fx, "ConfigMap");

    let t0 = Instant::now();
    let creators: Vec<_> = files
        .into_iter()
        .map(|file| std::thread::spawn(move || kubectl_ok(&["create", "-f", &file], None)))
        .collect();
    for creator in creators {
        creator.join().expect("kubectl create");
    }
    let created = t0.elapsed();
    figure(
        "s12",
        format!(
            "kubectl create of {} objects: {} ms",
            2 * LARGE,
            ms(created)
        ),
    );
    let mut backends_at = None;
    let mut routes_at = None;
    wait_for(
        "all backends and routes Accepted",
        secs(300),
        Duration::from_secs(2),
        || {
            if backends_at.is_none() && accepted_count("agentgatewaybackend", ns) == LARGE {
                backends_at = Some(t0.elapsed());
            }
            if routes_at.is_none() && accepted_count("httproute", ns) == LARGE {
                routes_at = Some(t0.elapsed());
            }
            match (backends_at, routes_at) {
                (Some(b), Some(r)) => Ok((b, r)),
                other => Err(format!("(backends, routes) Accepted at {other:?}")),
            }
        },
    );
    let config_at = wait_for(
        "the ConfigMap to hold every backend",
        secs(120),
        Duration::from_secs(1),
        || {
            let text = configmap_text(ns, &format!("{gw}-config"));
            let held = (0..LARGE)
                .filter(|i| text.contains(&format!("large-model-{i:04}")))
                .count();
            if held == LARGE {
                Ok(t0.elapsed())
            } else {
                Err(format!("{held} of {LARGE} backends in the ConfigMap"))
            }
        },
    );
    // Served: the Gateway's proxy answers on the first, a middle and the last route with that
    // route's backend's model.
    let mut pf = PortForward::start(ns, &format!("deployment/{gw}"), free_port(), 80);
    for i in [0, LARGE / 2, LARGE - 1] {
        let model = format!("large-model-{i:04}");
        wait_served(
            &mut pf,
            &format!("route /r{i}"),
            &format!("/r{i}/v1/chat/completions"),
            "large ok",
            secs(120),
            |r| check_completion(r, &model, "large ok"),
        );
    }
    let served = t0.elapsed();
    let programmed_at = wait_for(
        "Programmed with the ConfigMap's generation",
        secs(120),
        poll(),
        || {
            let cm = get_json(&["configmap", &format!("{gw}-config"), "-n", ns])
                .ok_or("no ConfigMap")?;
            let generation = cm["metadata"]["annotations"]["agentgateway.dev/config-generation"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            match programmed(ns, gw) {
                Some((s, _, m)) if s == "True" && m.contains(&generation) => Ok(t0.elapsed()),
                other => Err(format!("generation {generation}: {other:?}")),
            }
        },
    );
    let writes = metric_total(&fx, "ConfigMap") - writes_before;
    let cm = kubectl_json(&["get", "configmap", &format!("{gw}-config"), "-n", ns]);
    let compressed = cm["binaryData"]["config.yaml.gz"]
        .as_str()
        .map(|b| b.len() * 3 / 4)
        .expect("the config travels compressed");
    let yaml = configmap_text(ns, &format!("{gw}-config"));
    assert!(
        yaml.len() > 1024 * 1024,
        "the config is {} bytes: not past 1 MiB",
        yaml.len()
    );
    figure(
        "s12",
        format!(
            "{LARGE} backends Accepted after {} ms, {LARGE} routes Accepted after {} ms, all in the ConfigMap after {} ms, first/middle/last route served after {} ms, Gateway Programmed with the written generation after {} ms (from the start of the create; the create finished at {} ms, so everything was Accepted {} ms, served {} ms and Programmed {} ms after it)",
            ms(backends_at.unwrap_or_default()),
            ms(routes_at.unwrap_or_default()),
            ms(config_at),
            ms(served),
            ms(programmed_at),
            ms(created),
            ms(backends_at
                .unwrap_or_default()
                .max(routes_at.unwrap_or_default())
                .saturating_sub(created)),
            ms(served.saturating_sub(created)),
            ms(programmed_at.saturating_sub(created)),
        ),
    );
    figure(
        "s12",
        format!(
            "config: {} bytes of YAML ({} per backend with its route), {} bytes compressed in binaryData ({:.1}% of the 1 MiB limit); {writes} ConfigMap writes for the burst of {} objects",
            yaml.len(),
            yaml.len() / LARGE,
            compressed,
            compressed as f64 * 100.0 / (1024.0 * 1024.0),
            2 * LARGE
        ),
    );
    figure(
        "s12",
        format!(
            "RSS at {LARGE} backends: operator {:?} MiB, proxy {:?} MiB",
            rss_mib(fx.operator.proc.pid()),
            rss_mib_of(&format!("{ns}/{gw}-config"))
        ),
    );

    // Single edits with everything loaded: apply-to-served, median of 10.
    let mut latencies = Vec::new();
    for n in 1..=10 {
        let model = format!("large-model-0555-v{n}");
        let t0 = Instant::now();
        kubectl_ok(
            &[
                "patch",
                "agentgatewaybackend",
                "large-0555",
                "-n",
                ns,
                "--type",
                "json",
                "-p",
                &edit_models(&model),
            ],
            None,
        );
        wait_served(
            &mut pf,
            &format!("large-0555 to serve {model}"),
            "/r555/v1/chat/completions",
            "edited",
            secs(60),
            |r| check_completion(r, &model, "edited"),
        );
        latencies.push(t0.elapsed());
    }
    latencies.sort();
    figure(
        "s12",
        format!(
            "single backend edit -> served, {LARGE} backends loaded: median {} ms of {:?} ms",
            ms(latencies[latencies.len() / 2]),
            latencies.iter().map(|d| ms(*d)).collect::<Vec<_>>()
        ),
    );
}
