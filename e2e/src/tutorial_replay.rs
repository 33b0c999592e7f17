//! The user tutorial (`e2e/tutorial.md`, a copy of the product's acceptance test), replayed
//! command by command against whatever runs the Gateway `agentgateway-proxy`: the operator as a
//! local process (s1) or the Helm chart's in-cluster installation (s7).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::*;

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn poll() -> Duration {
    Duration::from_millis(250)
}

/// Polls a chat completion through `pf` until `check` accepts it; returns the time it took.
pub fn wait_served(
    pf: &mut PortForward,
    what: &str,
    path: &str,
    reply: &str,
    timeout: Duration,
    check: impl Fn(&HttpResponse) -> Result<Value, String>,
) -> (Duration, Value) {
    let start = Instant::now();
    let v = wait_for(what, timeout, Duration::from_millis(20), || {
        let r = pf.chat(path, reply).map_err(|e| e.to_string())?;
        check(&r)
    });
    (start.elapsed(), v)
}

/// Runs every tutorial command unchanged (only the local port moves if 8080 is taken) and checks
/// what it prints; records apply-to-served and delete-to-404 figures under `scenario`.
pub fn replay_tutorial(scenario: &str) {
    let mut cleanup = Cleanup::new();
    cleanup.kubectl(&[
        "delete",
        "httproute",
        "local-llm",
        "llm-pool",
        "-n",
        NS,
        "--ignore-not-found",
    ]);
    cleanup.kubectl(&[
        "delete",
        "agentgatewaybackend",
        "local-llm",
        "llm-pool",
        "-n",
        NS,
        "--ignore-not-found",
    ]);

    let path = tutorial_path();
    say(format!("replaying {}", path.display()));
    let md = std::fs::read_to_string(&path).expect("tutorial");
    let steps = parse_tutorial(&md);
    let step = |prefix: &str| -> Vec<String> {
        steps
            .iter()
            .find(|s| s.title.starts_with(prefix))
            .unwrap_or_else(|| panic!("no step {prefix:?} in the tutorial"))
            .commands
            .clone()
    };
    let port = if port_free(8080) {
        8080
    } else {
        let p = free_port();
        say(format!(
            "WARNING: host port 8080 is in use: the tutorial's port-forward and curl use {p} instead"
        ));
        p
    };
    let local = |c: &str| -> String {
        if port == 8080 {
            c.to_owned()
        } else {
            c.replace("8080:80", &format!("{port}:80"))
                .replace("localhost:8080", &format!("localhost:{port}"))
        }
    };

    // ---- Step 1: the backend, and its ACCEPTED column
    let s1 = step("Step 1");
    assert_eq!(s1.len(), 2, "step 1 commands: {s1:#?}");
    sh_show(&s1[0]).expect_ok("step 1 apply");
    let table = wait_for("local-llm ACCEPTED True", secs(30), poll(), || {
        let out = sh(&s1[1]);
        let lines: Vec<&str> = out.stdout.lines().collect();
        let header: Vec<&str> = lines
            .first()
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        let row: Vec<&str> = lines
            .get(1)
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        if header == ["NAME", "ACCEPTED", "AGE"]
            && row.len() == 3
            && row[0] == "local-llm"
            && row[1] == "True"
        {
            Ok(out.stdout)
        } else {
            Err(format!("{}{}", out.stdout, out.stderr))
        }
    });
    eprintln!("$ {}\n{table}", s1[1]);

    // ---- Step 2: the route; first measure apply -> served on a separate port-forward
    let s2 = step("Step 2");
    assert_eq!(s2.len(), 3, "step 2 commands: {s2:#?}");
    let mut meter = PortForward::start(NS, "deployment/agentgateway-proxy", free_port(), 80);
    let t0 = Instant::now();
    sh_show(&s2[0]).expect_ok("step 2 apply");
    let applied = t0.elapsed();
    let (_, _) = wait_served(
        &mut meter,
        "the tutorial's route to be served",
        "/v1/chat/completions",
        "agentgateway works",
        secs(30),
        |r| check_completion(r, MODEL, "agentgateway works"),
    );
    let served = t0.elapsed();
    figure(
        scenario,
        format!(
            "tutorial route: apply-to-served latency: {} ms from the start of `kubectl apply` ({} ms after it returned)",
            ms(served),
            ms(served.saturating_sub(applied))
        ),
    );
    let mut tutorial_pf =
        sh_background(&format!("{scenario}-tutorial-port-forward"), &local(&s2[1]));
    tutorial_pf.wait_log(&format!("Forwarding from 127.0.0.1:{port}"), secs(30));
    let reply = wait_for("the tutorial's curl", secs(30), poll(), || {
        let out = sh(&local(&s2[2]));
        let v: Value = serde_json::from_str(&out.stdout)
            .map_err(|e| format!("{e}: {}{}", out.stdout, out.stderr))?;
        let r = HttpResponse {
            status: 200,
            headers: vec![],
            body: out.stdout.clone(),
        };
        check_completion(&r, MODEL, "agentgateway works").map(|_| (v, out.stdout))
    });
    eprintln!("$ {}\n{}", local(&s2[2]), reply.1);
    let reply = reply.0;
    assert_eq!(reply["model"], MODEL);
    say(format!(
        "step 2: model {}, content {:?}, finish_reason {}, usage {}",
        reply["model"],
        reply["choices"][0]["message"]["content"],
        reply["choices"][0]["finish_reason"],
        reply["usage"]
    ));

    // ---- Step 3: the pool backend and its route
    let s3 = step("Step 3");
    assert_eq!(s3.len(), 3, "step 3 commands: {s3:#?}");
    sh_show(&s3[0]).expect_ok("step 3 backend");
    sh_show(&s3[1]).expect_ok("step 3 route");
    let pool = wait_for("llm-pool Accepted", secs(30), poll(), || {
        let b = get_json(&["agentgatewaybackend", "llm-pool", "-n", NS]).ok_or("missing")?;
        match condition(&b, "Accepted") {
            Some((s, _, _)) if s == "True" => Ok(b),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(pool["status"]["conditions"][0]["type"], "Accepted");
    let reply = wait_for("the tutorial's step 3 curl", secs(30), poll(), || {
        let out = sh(&local(&s3[2]));
        let r = HttpResponse {
            status: 200,
            headers: vec![],
            body: out.stdout.clone(),
        };
        check_completion(&r, MODEL, "pool ok")
            .map(|_| out.stdout.clone())
            .map_err(|e| format!("{e} {}", out.stderr))
    });
    eprintln!("$ {}\n{reply}", local(&s3[2]));

    // ---- Clean up: 404 with an OpenAI error within a second or two, nothing left in the config
    let clean = step("Clean up");
    assert_eq!(clean.len(), 2, "clean-up commands: {clean:#?}");
    let t0 = Instant::now();
    for c in &clean {
        sh_show(c).expect_ok("clean up");
    }
    let deleted = t0.elapsed();
    let body = wait_for(
        "404 after the clean-up",
        secs(10),
        Duration::from_millis(20),
        || {
            meter.ensure();
            let r = chat(meter.local_port, "/v1/chat/completions", "gone")
                .map_err(|e| e.to_string())?;
            check_openai_error(&r, 404)
        },
    );
    let gone = t0.elapsed();
    figure(
        scenario,
        format!(
            "clean-up: delete-to-404 {} ms from the first `kubectl delete` ({} ms after both returned); body {body}",
            ms(gone),
            ms(gone.saturating_sub(deleted))
        ),
    );
    assert!(
        gone.saturating_sub(deleted) < secs(3),
        "the proxy kept serving the deleted routes for {} ms",
        ms(gone.saturating_sub(deleted))
    );
    let cm = format!("{GATEWAY}-config");
    let text = wait_for(
        "the generated config to forget the tutorial",
        secs(10),
        poll(),
        || {
            let text = configmap_text(NS, &cm);
            let left: Vec<&str> = ["local-llm", "llm-pool", "local-a", "local-b"]
                .into_iter()
                .filter(|n| text.contains(n))
                .collect();
            if text.is_empty() {
                Err("ConfigMap missing or empty".into())
            } else if left.is_empty() {
                Ok(text)
            } else {
                Err(format!("still mentions {left:?}"))
            }
        },
    );
    say(format!("ConfigMap {cm} after the clean-up:\n{text}"));
    drop(tutorial_pf);
    drop(meter);
}
