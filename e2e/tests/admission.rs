//! s6: the admission webhooks against the real API server: the operator runs inside the cluster's
//! network namespace and the webhook configurations reach it by URL over TLS, with the CA bundle
//! the operator generated and patched in. (The chart scenario reaches them through the Service.)
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use e2e::admission::*;
use e2e::*;

const INVALID: &str = "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: broken
  namespace: e2e-webhook
spec:
  ai:
    groups:
    - providers:
      - name: a
        host: host.docker.internal
        port: 8090
        openai:
          model: m
      - name: b
        host: http://host.docker.internal
        port: 0
        openai:
          model: m
";

const VALID: &str = "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: local-llm
  namespace: e2e-webhook
spec:
  ai:
    provider:
      host: host.docker.internal
      port: 8090
      openai:
        model: gemma-4-12b-it-Q5_K_M.gguf
";

const MISSING_SECRET: &str = "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: hosted
  namespace: e2e-webhook
spec:
  ai:
    groups:
    - providers:
      - name: openai
        openai:
          model: gpt-4o
        policies:
          auth:
            secretRef:
              name: openai-secret
";

#[test]
#[ignore = "needs the e2e cluster: bash e2e/run.sh"]
fn s6_admission_webhooks() {
    install_crds();
    delete_webhook_configurations();
    delete_namespace(WEBHOOK_NS);
    create_webhook_namespace();
    let operator = NetnsOperator::start("s6-operator");

    // An object stored while no webhook guards the API: the operator's status says what the webhook
    // would have said, from the same validation function.
    apply(&INVALID.replace("name: broken", "name: stored-before"));
    let stored = wait_for(
        "backend stored before the webhooks is Accepted=False InvalidSpec",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let obj = get_json(&["agentgatewaybackend", "stored-before", "-n", WEBHOOK_NS])
                .ok_or("missing")?;
            match condition(&obj, "Accepted") {
                Some((s, r, m)) if s == "False" && r == "InvalidSpec" => Ok(m),
                other => Err(format!("{other:?}")),
            }
        },
    );
    say(format!(
        "status of the backend stored without webhooks: {stored}"
    ));
    assert!(stored.contains("spec.ai.groups[0].providers[1].port: must be between 1 and 65535"));

    // The webhook configurations: the operator puts its CA into both.
    apply(&webhook_configurations_yaml());
    let t = Instant::now();
    let bundle = wait_for(
        "caBundle patched into both webhook configurations",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || match ca_bundles(WEBHOOK_CONFIGURATION) {
            (Some(v), Some(m)) if v == m => Ok(v),
            other => Err(format!("{other:?}")),
        },
    );
    figure(
        "s6",
        format!(
            "caBundle patched into both configurations {} ms after they were applied",
            ms(t.elapsed())
        ),
    );
    let secret = kubectl_json(&["get", "secret", CERT_SECRET, "-n", WEBHOOK_NS]);
    assert_eq!(secret["data"]["ca.crt"].as_str(), Some(bundle.as_str()));
    assert_eq!(secret["type"].as_str(), Some("kubernetes.io/tls"));

    // 1. An invalid backend is refused at apply, every violation named with its field path, the
    //    same words as the status of the one stored earlier.
    eprintln!("$ kubectl apply -f broken.yaml");
    let refused = wait_refused(INVALID, Duration::from_secs(15));
    eprint!("{refused}");
    for expected in [
        "admission webhook \"validate.agentgateway.dev\" denied the request",
        "spec.ai.groups[0].providers[1].port: must be between 1 and 65535",
        "spec.ai.groups[0].providers[1].host:",
    ] {
        assert!(
            refused.contains(expected),
            "missing {expected:?} in:\n{refused}"
        );
    }
    assert!(get_json(&["agentgatewaybackend", "broken", "-n", WEBHOOK_NS]).is_none());

    // 2. A valid backend is stored with the defaults visible; applying it again changes nothing.
    eprintln!("$ kubectl apply -f local-llm.yaml");
    let out = kubectl(&["apply", "-f-"], Some(VALID));
    assert!(out.ok, "{}", out.stderr);
    eprint!("{}", out.stdout);
    let stored = kubectl_json(&["get", "agentgatewaybackend", "local-llm", "-n", WEBHOOK_NS]);
    let policies = &stored["spec"]["policies"];
    say(format!(
        "defaults written by the mutating webhook: {policies}"
    ));
    assert_eq!(policies["timeouts"]["request"], "600s", "{stored}");
    assert!(
        policies["health"]["eviction"]["duration"].is_string(),
        "{stored}"
    );
    assert_eq!(stored["spec"]["ai"]["provider"]["port"], 8090);
    let version = stored["metadata"]["resourceVersion"].clone();
    let again = kubectl_ok(&["apply", "-f-"], Some(VALID));
    assert!(again.contains("unchanged"), "{again}");
    let after = kubectl_json(&["get", "agentgatewaybackend", "local-llm", "-n", WEBHOOK_NS]);
    assert_eq!(
        after["metadata"]["resourceVersion"], version,
        "re-applying wrote the object"
    );

    // 3. A backend whose Secret does not exist yet is stored, with a warning kubectl prints.
    eprintln!("$ kubectl apply -f hosted.yaml");
    let out = kubectl(&["apply", "-f-"], Some(MISSING_SECRET));
    eprint!("{}{}", out.stderr, out.stdout);
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stderr.contains("Warning:") && out.stderr.contains("openai-secret"),
        "no warning about the missing Secret:\n{}",
        out.stderr
    );
    let hosted = kubectl_json(&["get", "agentgatewaybackend", "hosted", "-n", WEBHOOK_NS]);
    assert_eq!(
        hosted["spec"]["ai"]["groups"][0]["providers"][0]["policies"]["auth"]["secretRef"]["key"],
        "Authorization"
    );

    // 4. Straight to the webhook over TLS (the CA from the Secret): HTTP/2 and HTTP/1.1, and a
    //    malformed review is answered with a review that says so.
    let ca_file = env().artifacts.join("s6-ca.crt");
    let ca = kubectl_ok(
        &[
            "get",
            "secret",
            CERT_SECRET,
            "-n",
            WEBHOOK_NS,
            "-o",
            "go-template={{index .data \"ca.crt\" | base64decode}}",
        ],
        None,
    );
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    std::fs::write(&ca_file, ca).unwrap();
    let ca_path = ca_file.to_str().unwrap();
    for http2 in [true, false] {
        let out = post_to_webhook("/validate", "{not json", ca_path, http2);
        let (body, tail) = out.stdout.rsplit_once('\n').unwrap();
        say(format!("malformed review over {tail}: {body}"));
        assert!(tail.starts_with("200 "), "{out:?}");
        assert_eq!(tail.ends_with(" 2"), http2, "HTTP version {tail}");
        let review: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(review["response"]["allowed"], false);
        assert!(
            review["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .contains("malformed"),
            "{review}"
        );
    }

    // 5. Latency: 1,000 admissions (dry-run creates: both webhooks run, nothing is stored).
    let list = backends_yaml(WEBHOOK_NS, "load", 1000);
    let from = operator.proc.log_len();
    let before = apiserver_webhook_histogram("validate.agentgateway.dev");
    let t = Instant::now();
    kubectl_ok(
        &["create", "--dry-run=server", "-f-", "-o", "name"],
        Some(&list),
    );
    let took = t.elapsed();
    let after = apiserver_webhook_histogram("validate.agentgateway.dev");
    let mut durations = operator.review_durations_us(from);
    assert!(
        durations.len() >= 2000,
        "expected 1,000 validating + 1,000 mutating reviews in the log, found {}",
        durations.len()
    );
    let p50 = quantile(&mut durations, 0.50);
    let p99 = quantile(&mut durations, 0.99);
    let delta =
        |le: &str| after.get(le).copied().unwrap_or(0) - before.get(le).copied().unwrap_or(0);
    let total = delta("+Inf");
    let under_5ms = delta("0.005");
    figure(
        "s6",
        format!(
            "webhook latency over {} reviews (1,000 dry-run creates, {} ms in all): handler p50 {p50} us, p99 {p99} us; \
         API server's view of validate.agentgateway.dev (TLS + handler): {under_5ms}/{total} calls under 5 ms",
            durations.len(),
            ms(took)
        ),
    );
    assert!(
        total >= 1000,
        "the API server counted {total} webhook calls"
    );

    // 6. Forced rotation under load: the certificate Secret is deleted while admissions keep
    //    coming; the operator makes a new CA, trusts both in the caBundle, then serves the new
    //    certificate. No admission may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let batch = backends_yaml(WEBHOOK_NS, "rotate", 20);
        std::thread::spawn(move || {
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let out = kubectl(
                    &["create", "--dry-run=server", "-f-", "-o", "name"],
                    Some(&batch),
                );
                let created = out.stdout.lines().count() as u64;
                ok.fetch_add(created, Ordering::Relaxed);
                if !out.ok || created != 20 {
                    failed.fetch_add(20 - created.min(20), Ordering::Relaxed);
                    errors.push(out.stderr);
                }
            }
            errors
        })
    };
    std::thread::sleep(Duration::from_secs(3));
    let old_uid =
        kubectl_json(&["get", "secret", CERT_SECRET, "-n", WEBHOOK_NS])["metadata"]["uid"].clone();
    let log_from = operator.proc.log_len();
    let t = Instant::now();
    kubectl_ok(&["delete", "secret", CERT_SECRET, "-n", WEBHOOK_NS], None);
    wait_for(
        "a new certificate Secret",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let s = get_json(&["secret", CERT_SECRET, "-n", WEBHOOK_NS]).ok_or("missing")?;
            if s["metadata"]["uid"] != old_uid {
                Ok(())
            } else {
                Err("old".to_string())
            }
        },
    );
    let recreated = t.elapsed();
    wait_for(
        "the operator serves the new certificate",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            // The new CA is announced, then its certificate served (a routine renewal in
            // between would also say "serving").
            let log = operator.proc.log_text();
            let since = log.get(log_from..).unwrap_or_default();
            let served = since
                .find("new webhook CA")
                .is_some_and(|at| since[at..].contains("serving the webhook certificate"));
            if served {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        },
    );
    let swapped = t.elapsed();
    let (validating, mutating) = ca_bundles(WEBHOOK_CONFIGURATION);
    let new_bundle =
        kubectl_json(&["get", "secret", CERT_SECRET, "-n", WEBHOOK_NS])["data"]["ca.crt"]
            .as_str()
            .unwrap()
            .to_owned();
    assert_eq!(validating.as_deref(), Some(new_bundle.as_str()));
    assert_eq!(mutating.as_deref(), Some(new_bundle.as_str()));
    assert_ne!(new_bundle, bundle, "the CA bundle did not change");
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    let errors = load.join().unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    figure(
        "s6",
        format!(
            "forced rotation (certificate Secret deleted): new Secret after {} ms, new certificate served after {} ms; \
         admissions during it: {ok} ok, {failed} failed",
            ms(recreated),
            ms(swapped)
        ),
    );
    assert_eq!(
        failed, 0,
        "admissions failed during the rotation: {errors:?}"
    );
    assert!(ok >= 40, "too little load during the rotation: {ok}");

    // Routine renewals (same CA) happened during the load above without a failed admission.
    let renewals = operator
        .proc
        .log_text()
        .matches("renewed the webhook serving certificate")
        .count();
    figure(
        "s6",
        format!(
            "serving certificate valid {} s: renewed {renewals} times during the scenario, no admission failed",
            CERT_VALIDITY.as_secs()
        ),
    );
    assert!(
        renewals >= 1,
        "no routine renewal of the serving certificate"
    );

    // After the rotation: still refusing and admitting.
    let refused = kubectl_fails(&["apply", "-f-"], Some(INVALID));
    assert!(refused.contains("must be between 1 and 65535"), "{refused}");

    delete_webhook_configurations();
    drop(operator);
    delete_namespace(WEBHOOK_NS);
}
