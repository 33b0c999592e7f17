//! `kubectl` and the JSON it prints.

use super::*;

/// The outcome of a command.
#[derive(Debug, Clone)]
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// stdout, or a panic that shows the command and both streams.
    pub fn expect_ok(self, what: &str) -> String {
        assert!(
            self.ok,
            "{what} failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self.stdout
    }
}

/// Runs `c` (with `stdin`) to completion.
pub fn run(mut c: Command, stdin: Option<&str>) -> Out {
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let input = input.to_owned();
        // a writer thread: a large manifest must not deadlock against a full stdout pipe
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {c:?}: {e}"));
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `kubectl ARGS` (with `stdin`), whatever the outcome.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Out {
    let mut c = cmd("kubectl");
    c.args(args);
    run(c, stdin)
}

/// `kubectl ARGS`, which must succeed; returns stdout.
pub fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    kubectl(args, stdin).expect_ok(&format!("kubectl {}", args.join(" ")))
}

/// Like [`kubectl_ok`], but echoes the command and its output the way a user sees them.
pub fn kubectl_show(args: &[&str], stdin: Option<&str>) -> String {
    eprintln!("$ kubectl {}", args.join(" "));
    let out = kubectl_ok(args, stdin);
    eprint!("{out}");
    out
}

/// `kubectl ARGS -o json`, parsed.
pub fn kubectl_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = kubectl_ok(&all, None);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {all:?}: bad JSON: {e}"))
}

/// `kubectl get ARGS -o json`, or `None` when the object does not exist.
pub fn get_json(args: &[&str]) -> Option<Value> {
    let mut all = vec!["get"];
    all.extend(args);
    all.extend(["-o", "json", "--ignore-not-found"]);
    let out = kubectl_ok(&all, None);
    if out.trim().is_empty() {
        None
    } else {
        Some(serde_json::from_str(&out).expect("kubectl JSON"))
    }
}

/// `kubectl apply -f-` with `yaml`.
pub fn apply(yaml: &str) -> String {
    kubectl_ok(&["apply", "-f-"], Some(yaml))
}

/// A condition of an object's `status.conditions` (or of `conditions`, for a route's parent
/// status): `(status, reason, message)`.
pub fn condition(obj: &Value, kind: &str) -> Option<(String, String, String)> {
    obj.pointer("/status/conditions")
        .or_else(|| obj.get("conditions"))?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

/// All `data` values of a ConfigMap, concatenated, with a compressed config
/// (`binaryData["config.yaml.gz"]`) decompressed (empty when it does not exist).
pub fn configmap_text(ns: &str, name: &str) -> String {
    use agentgateway_crds::proxy_config::delivery::{
        CONFIG_MAP_GZIP_KEY, MAX_CONFIG_BYTES, decode_gzip,
    };
    use base64::Engine as _;
    let Some(cm) = get_json(&["configmap", name, "-n", ns]) else {
        return String::new();
    };
    let mut text = String::new();
    if let Some(data) = cm["data"].as_object() {
        for (k, v) in data {
            let _ = writeln!(text, "# {k}\n{}", v.as_str().unwrap_or_default());
        }
    }
    if let Some(encoded) = cm["binaryData"][CONFIG_MAP_GZIP_KEY].as_str() {
        let yaml = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| e.to_string())
            .and_then(|bytes| decode_gzip(&bytes, MAX_CONFIG_BYTES).map_err(|e| e.to_string()));
        match yaml {
            Ok(yaml) => {
                let _ = writeln!(text, "# {CONFIG_MAP_GZIP_KEY}\n{yaml}");
            }
            Err(e) => {
                let _ = writeln!(text, "# {CONFIG_MAP_GZIP_KEY}: unreadable: {e}");
            }
        }
    }
    text
}
