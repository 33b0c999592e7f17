//! The operator's memory follows what backends and Gateways reference, not what the cluster
//! holds: Secrets and ConfigMaps are cached as metadata only. Against the real 1.20 cluster, like
//! `scenarios.rs` (`#[ignore]`d; `e2e/run.sh` runs them).

use std::fmt::Write as _;
use std::time::Duration;

use e2e::*;

/// Unrelated Secrets and their size (like Helm release Secrets).
const SECRETS: usize = 60;
const SECRET_BYTES: usize = 900 * 1024;

/// Incompressible text of `len` bytes (a xorshift stream, hex-encoded), different per `seed`.
fn noise(seed: u64, len: usize) -> String {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut text = String::with_capacity(len);
    while text.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let _ = write!(text, "{state:016x}");
    }
    text.truncate(len);
    text
}

/// 60 Secrets of 900 KiB in a namespace no backend looks at grow the operator's RSS by less than
/// 20 MiB, and the operator keeps reconciling meanwhile.
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s13_unrelated_secrets_cost_the_operator_no_memory() {
    let fx = Fixture::up("s13");
    let ns = "e2e-unrelated";
    let mut cleanup = Cleanup::new();
    cleanup.namespace(ns);
    create_test_namespace(ns);
    // Windows, not waits: the operator exposes no count of cached Secrets to poll for, so the
    // watch gets a few seconds to deliver the events before RSS is read.
    std::thread::sleep(Duration::from_secs(3));
    let pid = fx.operator.proc.pid();
    let before = rss_mib(pid).unwrap_or_default();
    let file = env().artifacts.join("unrelated-secrets.yaml");
    let mut yaml = String::new();
    for i in 0..SECRETS {
        let _ = write!(
            yaml,
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: release-{i:02}, namespace: {ns}}}\nstringData:\n  release: {}\n",
            noise(i as u64 + 1, SECRET_BYTES)
        );
    }
    std::fs::write(&file, yaml).expect("write the Secrets");
    kubectl_ok(&["create", "-f", &file.display().to_string()], None);
    // The watch delivers them within a moment; give it time, then edit them all once more (each
    // update is another event of the same size).
    std::thread::sleep(Duration::from_secs(5));
    kubectl_ok(&["label", "secret", "--all", "-n", ns, "touched=yes"], None);
    std::thread::sleep(Duration::from_secs(5));
    let after = rss_mib(pid).unwrap_or_default();
    figure(
        "s13",
        format!(
            "operator RSS {before} MiB -> {after} MiB after {SECRETS} unrelated Secrets of {} KiB were created and relabelled",
            SECRET_BYTES / 1024
        ),
    );
    assert!(
        after < before + 20,
        "the operator grew from {before} to {after} MiB"
    );
    // Still reconciling: the shared Gateway is programmed.
    wait_for("the shared Gateway Programmed", secs(60), poll(), || {
        let gateway = kubectl_json(&["get", "gateway", GATEWAY, "-n", NS]);
        match condition(&gateway, "Programmed") {
            Some((s, ..)) if s == "True" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}
