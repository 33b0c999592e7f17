//! Client governance on the real cluster (`#[ignore]`d; `e2e/run.sh` runs it): Redis in the
//! cluster (Debian's redis-server as an image, with a password), a Gateway with two proxy
//! replicas, and an AgentgatewayPolicy with API keys and a global request limit. The tutorial's
//! request with a valid key succeeds on both replicas, without one gets 401, the shared limit
//! holds across both replicas together, and a rotated key is live within about a second.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use e2e::*;

const REDIS: &str = "e2e-redis";
const REDIS_PASSWORD: &str = "e2e-redis-password-7c1f";
const ROUTE: &str = "e2e-gov";
const LIMIT: usize = 6;

fn redis_manifests() -> String {
    format!(
        "apiVersion: v1
kind: Secret
metadata: {{name: {REDIS}, namespace: {NS}}}
stringData: {{password: {REDIS_PASSWORD}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {REDIS}, namespace: {NS}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {REDIS}}}}}
  template:
    metadata: {{labels: {{app: {REDIS}}}}}
    spec:
      containers:
      - name: redis
        image: redis-server:e2e
        imagePullPolicy: Never
        args: [--port, '6379', --bind, 0.0.0.0, --protected-mode, 'no', --save, '', --appendonly, 'no', --requirepass, {REDIS_PASSWORD}]
        ports: [{{containerPort: 6379}}]
        readinessProbe: {{tcpSocket: {{port: 6379}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: {REDIS}, namespace: {NS}}}
spec:
  selector: {{app: {REDIS}}}
  ports: [{{port: 6379, targetPort: 6379}}]
"
    )
}

fn consumer(name: &str, key: &str) -> String {
    format!(
        "apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {NS}, labels: {{e2e.agentgateway.dev/consumer: gov}}}}
stringData: {{api-key: {key}}}
---
"
    )
}

fn governed_manifests() -> String {
    format!(
        "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {{name: {ROUTE}, namespace: {NS}}}
spec:
  ai:
    provider: {{host: host.docker.internal, port: {MOCK_PORT}, openai: {{model: {MODEL}}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {ROUTE}, namespace: {NS}}}
spec:
  parentRefs: [{{name: {GATEWAY}, namespace: {NS}}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /gov}}}}]
    backendRefs: [{{name: {ROUTE}, group: agentgateway.dev, kind: AgentgatewayBackend}}]
---
{}{}apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayPolicy
metadata: {{name: {ROUTE}, namespace: {NS}}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {ROUTE}}}]
  auth: {{apiKeys: {{secretSelector: {{matchLabels: {{e2e.agentgateway.dev/consumer: gov}}}}}}}}
  rateLimit:
    global: [{{requests: {LIMIT}, per: Day, key: consumer}}]
  failureMode: Closed
",
        consumer("e2e-gov-alice", "sk-e2e-alice"),
        consumer("e2e-gov-bob", "sk-e2e-bob"),
    )
}

/// The tutorial's chat request, as one proxy replica answers it.
fn chat_with(port: u16, key: Option<&str>, reply: &str) -> std::io::Result<HttpResponse> {
    let bearer = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("authorization", b)])
        .unwrap_or_default();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    http_with(
        addr,
        &format!("localhost:{port}"),
        "POST",
        "/gov/v1/chat/completions",
        Some(&chat_body(reply)),
        &headers,
        Duration::from_secs(10),
    )
}

fn proxy_pods() -> Vec<String> {
    let dep = kubectl_json(&["get", "deployment", GATEWAY, "-n", NS]);
    let pods = kubectl_json(&["get", "pods", "-n", NS, "-l", &label_selector(&dep)]);
    pods["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s16_api_keys_and_a_global_limit_hold_across_two_replicas() {
    install_crds();
    ensure_platform();
    // Dropped last: Redis goes once the operator (the fixture) has stopped.
    let mut redis_cleanup = Cleanup::new();
    for kind in ["deployment", "service", "secret"] {
        redis_cleanup.kubectl(&["delete", kind, REDIS, "-n", NS, "--ignore-not-found"]);
    }
    apply(&redis_manifests());
    let redis_ip = wait_for("the Redis Service's ClusterIP", secs(30), poll(), || {
        let svc = get_json(&["service", REDIS, "-n", NS]).ok_or("no Service yet")?;
        svc["spec"]["clusterIP"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no clusterIP".to_string())
    });
    wait_for("Redis Ready", secs(90), poll(), || {
        let dep = get_json(&["deployment", REDIS, "-n", NS]).ok_or("no Deployment")?;
        (dep["status"]["readyReplicas"].as_u64() == Some(1))
            .then_some(())
            .ok_or_else(|| "not ready".to_string())
    });
    let opts = OperatorOpts {
        proxy_replicas: 2,
        redis: Some((
            format!("redis://{redis_ip}:6379"),
            Some(format!("{NS}/{REDIS}")),
        )),
        ..OperatorOpts::new("s16-operator")
    };
    let _fx = Fixture::up_with(opts, "s16");
    // Dropped first, while the operator still runs: the proxies drop the policy.
    let mut cleanup = Cleanup::new();
    for (kind, name) in [
        ("agentgatewaypolicy", ROUTE),
        ("httproute", ROUTE),
        ("agentgatewaybackend", ROUTE),
        ("secret", "e2e-gov-alice"),
        ("secret", "e2e-gov-bob"),
    ] {
        cleanup.kubectl(&["delete", kind, name, "-n", NS, "--ignore-not-found"]);
    }
    apply(&governed_manifests());

    let accepted = wait_for("the policy Accepted on its route", secs(60), poll(), || {
        let policy = get_json(&["agentgatewaypolicy", ROUTE, "-n", NS]).ok_or("no policy")?;
        match condition(&policy, "Accepted") {
            Some((status, _, message)) if status == "True" => Ok(message),
            other => Err(format!("{other:?}")),
        }
    });
    say(format!("s16: policy Accepted: {accepted}"));

    let pods = proxy_pods();
    assert_eq!(pods.len(), 2, "two proxy replicas: {pods:?}");
    let mut forwards: Vec<PortForward> = pods
        .iter()
        .map(|pod| PortForward::start(NS, &format!("pod/{pod}"), free_port(), 80))
        .collect();
    // Both replicas serve the governed route: a valid key succeeds, none gets 401.
    for pf in &mut forwards {
        wait_for(
            "the governed route served with a key",
            secs(60),
            poll(),
            || {
                pf.ensure();
                let r = chat_with(pf.local_port, Some("sk-e2e-alice"), "governed")
                    .map_err(|e| e.to_string())?;
                check_completion(&r, MODEL, "governed").map(|_| ())
            },
        );
        let anonymous = chat_with(pf.local_port, None, "no key").expect("request");
        let body = check_openai_error(&anonymous, 401).expect("401");
        assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
        let wrong = chat_with(pf.local_port, Some("sk-e2e-mallory"), "bad key").expect("request");
        check_openai_error(&wrong, 401).expect("401 for an unknown key");
    }

    // The shared limit: alice already used 2 of LIMIT; both replicas together admit the rest.
    let mut admitted = 2;
    let mut refused = 0;
    for i in 0..10 {
        let pf = &mut forwards[i % 2];
        pf.ensure();
        let r = chat_with(pf.local_port, Some("sk-e2e-alice"), "counted").expect("request");
        match r.status {
            200 => admitted += 1,
            429 => {
                let body = check_openai_error(&r, 429).expect("429");
                assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
                assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
                refused += 1;
            }
            other => panic!("unexpected status {other}: {}", r.body),
        }
    }
    assert_eq!(
        admitted, LIMIT,
        "the replicas together admitted {admitted}, the limit is {LIMIT}"
    );
    figure(
        "s16",
        format!(
            "global limit of {LIMIT} requests held across 2 replicas: {admitted} admitted, {refused} refused (429)"
        ),
    );
    // Bob's counter is his own.
    let bob = chat_with(forwards[1].local_port, Some("sk-e2e-bob"), "bob").expect("request");
    check_completion(&bob, MODEL, "bob").expect("bob is under his own limit");

    // Key rotation: bob's new key works on both replicas, his old one is refused.
    let rotated = Instant::now();
    kubectl_ok(
        &[
            "patch",
            "secret",
            "e2e-gov-bob",
            "-n",
            NS,
            "--type",
            "merge",
            "-p",
            r#"{"stringData":{"api-key":"sk-e2e-bob-2"}}"#,
        ],
        None,
    );
    for pf in &mut forwards {
        wait_for(
            "the rotated key live",
            secs(30),
            Duration::from_millis(50),
            || {
                let r = chat_with(pf.local_port, Some("sk-e2e-bob-2"), "rotated")
                    .map_err(|e| e.to_string())?;
                check_completion(&r, MODEL, "rotated").map(|_| ())
            },
        );
    }
    let live = rotated.elapsed();
    let old = chat_with(forwards[0].local_port, Some("sk-e2e-bob"), "old key").expect("request");
    check_openai_error(&old, 401).expect("the old key is refused");
    figure(
        "s16",
        format!(
            "a rotated API key was live on both replicas {} ms after the patch",
            ms(live)
        ),
    );
    say("s16: keys checked on both replicas, the shared limit held, the rotation was live");
}
