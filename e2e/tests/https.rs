//! HTTPS listeners on the real cluster (`#[ignore]`d; `e2e/run.sh` runs it): a Gateway whose
//! listener terminates TLS with a `kubernetes.io/tls` Secret the test creates (its own CA, made
//! with openssl), the tutorial's request over TLS with `curl --cacert` through the Gateway's
//! Service (HTTP/2 by ALPN), a listener whose certificate is missing reported
//! `ResolvedRefs=False InvalidCertificateRef` while the other keeps serving, and a live
//! certificate rotation (the Secret replaced by one of another CA) during which every request
//! through the Service succeeds.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::*;
use serde_json::Value;

const TLS_NS: &str = "e2e-tls";
const TLS_GW: &str = "tls-gw";
const HOST: &str = "llm.e2e.test";
const CERT_SECRET: &str = "llm-cert";

/// A throwaway CA and a server certificate for [`HOST`] it signed, made with the openssl CLI.
struct TestPki {
    dir: PathBuf,
}

impl TestPki {
    fn new(dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).expect("pki dir");
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// CA `ca` (`<ca>.pem`, `<ca>.key`) and `<ca>-server.pem`/`<ca>-server.key` for [`HOST`].
    fn issue(&self, ca: &str) {
        let openssl = |args: &[&str]| {
            let mut c = cmd("openssl");
            c.args(args);
            run(c, None).expect_ok(&format!("openssl {}", args.join(" ")));
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let (ca_pem, ca_key) = (
            self.path(&format!("{ca}.pem")),
            self.path(&format!("{ca}.key")),
        );
        let subject = format!("/CN=agentgateway e2e {ca}");
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", &subject];
        args.extend(ec);
        args.extend([
            "-keyout",
            &ca_key,
            "-out",
            &ca_pem,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&args);
        let (key, csr, pem) = (
            self.path(&format!("{ca}-server.key")),
            self.path(&format!("{ca}-server.csr")),
            self.path(&format!("{ca}-server.pem")),
        );
        let server_subject = format!("/CN={HOST}");
        let mut args = vec![
            "req",
            "-subj",
            &server_subject,
            "-keyout",
            &key,
            "-out",
            &csr,
        ];
        args.extend(ec);
        openssl(&args);
        let ext = self.path(&format!("{ca}-server.ext"));
        std::fs::write(
            &ext,
            format!(
                "subjectAltName=DNS:{HOST}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("write ext");
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-extfile",
            &ext,
            "-out",
            &pem,
        ]);
    }

    /// The `kubernetes.io/tls` Secret of `ca`'s server certificate, as YAML for `kubectl apply`.
    fn secret_yaml(&self, ca: &str) -> String {
        let mut c = cmd("kubectl");
        c.args([
            "create",
            "secret",
            "tls",
            CERT_SECRET,
            "-n",
            TLS_NS,
            "--dry-run=client",
            "-o",
            "yaml",
        ])
        .args(["--cert", &self.path(&format!("{ca}-server.pem"))])
        .args(["--key", &self.path(&format!("{ca}-server.key"))]);
        run(c, None).expect_ok("kubectl create secret tls --dry-run")
    }
}

fn tls_manifests() -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {TLS_GW}, namespace: {TLS_NS}, labels: {{{TEST_LABEL}: 'true'}}}}
spec:
  gatewayClassName: agentgateway
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    hostname: {HOST}
    tls:
      mode: Terminate
      certificateRefs: [{{kind: Secret, name: {CERT_SECRET}}}]
  - name: broken
    port: 8443
    protocol: HTTPS
    hostname: other.e2e.test
    tls:
      certificateRefs: [{{kind: Secret, name: no-such-cert}}]
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {{name: tls-llm, namespace: {TLS_NS}}}
spec:
  ai:
    provider: {{host: host.docker.internal, port: {MOCK_PORT}, openai: {{model: {MODEL}}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: tls-llm, namespace: {TLS_NS}}}
spec:
  parentRefs: [{{name: {TLS_GW}}}]
  rules:
  - backendRefs: [{{name: tls-llm, group: agentgateway.dev, kind: AgentgatewayBackend}}]
"
    )
}

/// The tutorial's request with curl inside the cluster's netns, to the Gateway's Service
/// (`HOST` resolved to its ClusterIP), trusting only `ca_file`. `(http code, http version,
/// body)`, or curl's error.
fn curl_chat(
    service_ip: &str,
    ca_file: &str,
    reply: &str,
) -> Result<(u16, String, String), String> {
    let resolve = format!("{HOST}:443:{service_ip}");
    let url = format!("https://{HOST}/v1/chat/completions");
    let body = chat_body(reply);
    let out = in_netns(&[
        "curl",
        "-sS",
        "--http2",
        "--max-time",
        "10",
        "--cacert",
        ca_file,
        "--resolve",
        &resolve,
        "-H",
        "content-type: application/json",
        "-d",
        &body,
        "-w",
        "\n%{http_code} %{http_version}",
        &url,
    ]);
    if !out.ok {
        return Err(out.stderr.trim().to_string());
    }
    let (body, status) = out.stdout.rsplit_once('\n').ok_or("no status line")?;
    let (code, version) = status.split_once(' ').ok_or("no version")?;
    let code = code.parse().map_err(|_| format!("status {code:?}"))?;
    Ok((code, version.to_string(), body.to_string()))
}

/// A 200 whose answer is `reply`.
fn check_answer(answer: &(u16, String, String), reply: &str) -> Result<(), String> {
    let (code, _, body) = answer;
    let json: Value = serde_json::from_str(body).map_err(|_| format!("{code}: {body}"))?;
    if *code == 200 && json["choices"][0]["message"]["content"] == reply {
        Ok(())
    } else {
        Err(format!("{code}: {body}"))
    }
}

fn listener_condition(
    gateway: &Value,
    listener: &str,
    kind: &str,
) -> Option<(String, String, String)> {
    let listeners = gateway["status"]["listeners"].as_array()?;
    let status = listeners.iter().find(|l| l["name"] == listener)?;
    condition(status, kind)
}

#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s17_https_listener_serves_tls_and_rotates_certificates_live() {
    let _fx = Fixture::up("s17");
    let mut cleanup = Cleanup::new();
    cleanup.namespace(TLS_NS);
    create_test_namespace(TLS_NS);
    let pki = TestPki::new(env().artifacts.join("s17-pki"));
    pki.issue("ca1");
    pki.issue("ca2");
    apply(&pki.secret_yaml("ca1"));
    apply(&tls_manifests());

    wait_proxy_ready(TLS_NS, TLS_GW, secs(180));
    let gateway = wait_for("the https listener Programmed", secs(60), poll(), || {
        let gw = get_json(&["gateway", TLS_GW, "-n", TLS_NS]).ok_or("no Gateway")?;
        match listener_condition(&gw, "https", "Programmed") {
            Some((status, _, _)) if status == "True" => Ok(gw),
            other => Err(format!("{other:?}")),
        }
    });
    let resolved = listener_condition(&gateway, "https", "ResolvedRefs");
    assert_eq!(
        resolved.as_ref().map(|c| c.0.as_str()),
        Some("True"),
        "{resolved:?}"
    );
    let broken =
        listener_condition(&gateway, "broken", "ResolvedRefs").expect("broken listener status");
    assert_eq!(
        (broken.0.as_str(), broken.1.as_str()),
        ("False", "InvalidCertificateRef"),
        "{broken:?}"
    );
    assert!(
        broken.2.contains("no-such-cert"),
        "the message names the Secret: {broken:?}"
    );
    say(format!("s17: listener broken: {}", broken.2));

    // The tutorial's request over TLS, trusting only the test CA: HTTP/2 by ALPN.
    let ip = service_cluster_ip(TLS_NS, TLS_GW).to_string();
    let (ca1, ca2) = (pki.path("ca1.pem"), pki.path("ca2.pem"));
    let answer = wait_for(
        "the tutorial's request over HTTPS",
        secs(60),
        poll(),
        || {
            let answer = curl_chat(&ip, &ca1, "over tls")?;
            check_answer(&answer, "over tls").map(|_| answer)
        },
    );
    assert_eq!(answer.1, "2", "ALPN should negotiate HTTP/2");
    assert!(
        curl_chat(&ip, &ca2, "wrong ca").is_err(),
        "a client trusting another CA must fail the handshake"
    );
    say("s17: chat completion over HTTPS (HTTP/2) with curl --cacert");

    // Live rotation: requests trusting both CAs run without pause while the Secret is replaced
    // by the certificate of the second CA; every one must succeed, and the new certificate must
    // be served (a client trusting only the second CA gets through) without a pod restart.
    let both = pki.path("both.pem");
    let bundle = format!(
        "{}{}",
        std::fs::read_to_string(&ca1).expect("ca1"),
        std::fs::read_to_string(&ca2).expect("ca2")
    );
    std::fs::write(&both, bundle).expect("bundle");
    let pods_before = deployment_pods(TLS_NS, TLS_GW);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let loop_thread = {
        let (stop, ok, failed, failures, ip, both) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            failures.clone(),
            ip.clone(),
            both.clone(),
        );
        std::thread::spawn(move || {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < secs(120) {
                match curl_chat(&ip, &both, "rotating").and_then(|a| check_answer(&a, "rotating")) {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        failures.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };
    wait_for("the load loop running", secs(30), poll(), || {
        (ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) >= 3)
            .then_some(())
            .ok_or_else(|| "fewer than 3 requests".to_string())
    });
    let rotated = Instant::now();
    apply(&pki.secret_yaml("ca2"));
    wait_for(
        "the rotated certificate served",
        secs(60),
        Duration::from_millis(100),
        || {
            let answer = curl_chat(&ip, &ca2, "rotated")?;
            check_answer(&answer, "rotated")
        },
    );
    let live = rotated.elapsed();
    let after = ok.load(Ordering::Relaxed);
    wait_for("more requests after the rotation", secs(30), poll(), || {
        (ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) >= after + 5)
            .then_some(())
            .ok_or_else(|| "not yet".to_string())
    });
    stop.store(true, Ordering::Relaxed);
    loop_thread.join().expect("the request loop");
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    figure(
        "s17",
        format!(
            "HTTPS listener: a rotated certificate was served {} ms after the Secret changed; {ok} requests over TLS during the rotation, {failed} failed",
            ms(live)
        ),
    );
    assert_eq!(
        failed,
        0,
        "requests failed during the rotation: {:?}",
        failures.lock().unwrap_or_else(|p| p.into_inner())
    );
    assert!(
        curl_chat(&ip, &ca1, "old ca").is_err(),
        "the old certificate is no longer served"
    );
    assert_eq!(
        deployment_pods(TLS_NS, TLS_GW),
        pods_before,
        "the rotation restarted no pod"
    );
    drop(cleanup);
}
