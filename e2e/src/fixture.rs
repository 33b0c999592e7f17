//! What every scenario needs, and clean-up.

use super::*;

/// What every scenario needs: CRDs, the platform objects, the tutorial's model server inside the
/// netns at `host.docker.internal:8090`, the operator, and a Ready proxy Deployment.
/// Dropping it stops the operator and the model server. Each test brings up its own (cheap when the
/// proxy Deployment is already there): a fixture shared through a static would never be dropped, so
/// its operator would keep running beside the next test's.
pub struct Fixture {
    // field order = drop order
    pub operator: Operator,
    pub mock: Proc,
}

impl Fixture {
    pub fn up(test: &str) -> Fixture {
        Fixture::up_with(OperatorOpts::new(&format!("{test}-operator")), test)
    }

    /// [`Fixture::up`] with an operator started from `opts`.
    pub fn up_with(opts: OperatorOpts, test: &str) -> Fixture {
        let t0 = Instant::now();
        install_crds();
        ensure_extra_hosts();
        ensure_platform();
        let mock = start_mock_llm(
            &format!("{test}-mock-llm"),
            &format!("{NODE_IP}:{MOCK_PORT}"),
            MODEL,
            &[],
        );
        let operator = Operator::start(opts);
        let took = wait_proxy_ready(NS, GATEWAY, Duration::from_secs(180));
        say(format!(
            "fixture up in {} ms (proxy Deployment Ready after {} ms)",
            ms(t0.elapsed()),
            ms(took)
        ));
        Fixture { operator, mock }
    }

    /// Stops the fixture's operator (SIGTERM, up to `grace`, then SIGKILL); the model server and
    /// what the operator created stay.
    pub fn stop_operator(&mut self, grace: Duration) {
        self.operator.proc.stop(grace);
    }

    /// Stops the fixture's operator (SIGTERM, up to `grace`) and starts one from `opts` in its
    /// place. The new one belongs to the fixture: like the first, it outlives a [`Cleanup`]
    /// declared after the fixture, so it reconciles that clean-up's deletions.
    pub fn restart_operator(&mut self, grace: Duration, opts: OperatorOpts) -> &Operator {
        self.stop_operator(grace);
        self.operator = Operator::start(opts);
        &self.operator
    }
}

/// `kind/namespace/name` → resourceVersion of every object of `kinds` in `ns` (or cluster-wide
/// kinds when `ns` is empty).
pub fn resource_versions(kinds: &str, ns: &str) -> BTreeMap<String, String> {
    let list = if ns.is_empty() {
        kubectl_json(&["get", kinds])
    } else {
        kubectl_json(&["get", kinds, "-n", ns])
    };
    let mut out = BTreeMap::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let key = format!(
            "{}/{}/{}",
            item["kind"].as_str().unwrap_or("?"),
            item["metadata"]["namespace"].as_str().unwrap_or(""),
            item["metadata"]["name"].as_str().unwrap_or("?")
        );
        out.insert(
            key,
            item["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
    }
    out
}

/// The keys whose value differs between two [`resource_versions`] snapshots (incl. added/removed).
pub fn changed(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {:?} -> {:?}", a.get(k), b.get(k)))
        .collect()
}

/// Reads a file relative to the workspace.
pub fn workspace_file(rel: impl AsRef<Path>) -> String {
    let p = env().workspace.join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}
