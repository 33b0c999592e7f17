//! Checks of the harness itself that need no cluster (they run with `cargo test --workspace`).

use e2e::{env, parse_tutorial, tutorial_path};
use serde_json::Value;

#[test]
fn the_tutorial_parses_into_its_commands() {
    let md = std::fs::read_to_string(tutorial_path()).expect("the tutorial");
    let steps = parse_tutorial(&md);
    let count = |prefix: &str| {
        steps
            .iter()
            .find(|s| s.title.starts_with(prefix))
            .map(|s| s.commands.len())
    };
    assert_eq!(count("Step 1"), Some(2));
    assert_eq!(count("Step 2"), Some(3));
    assert_eq!(count("Step 3"), Some(3));
    assert_eq!(count("Clean up"), Some(2));
    let step2 = &steps
        .iter()
        .find(|s| s.title.starts_with("Step 2"))
        .expect("step 2")
        .commands;
    assert!(step2[0].starts_with("kubectl apply -f- <<'YAML'\n") && step2[0].ends_with("\nYAML"));
    assert_eq!(
        step2[1],
        "kubectl port-forward deployment/agentgateway-proxy -n agentgateway-system 8080:80 &"
    );
    assert!(
        step2[2].starts_with("curl -s localhost:8080/v1/chat/completions")
            && step2[2].ends_with("}'")
    );
}

/// The committed Gateway API CRDs carry nothing Kubernetes 1.20 or kubectl reject.
#[test]
fn the_gateway_api_crds_suit_kubernetes_1_20() {
    let text = std::fs::read_to_string(env().workspace.join("e2e/crds/gateway-api.yaml"))
        .expect("e2e/crds/gateway-api.yaml");
    let mut kinds = Vec::new();
    for doc in text.split("\n---\n").skip(1) {
        let crd: Value = serde_yaml::from_str(doc).expect("a CRD");
        kinds.push(
            crd["spec"]["names"]["kind"]
                .as_str()
                .unwrap_or("?")
                .to_owned(),
        );
        assert!(
            crd["metadata"]["annotations"]["api-approved.kubernetes.io"].is_string(),
            "{kinds:?}: protected groups need api-approved.kubernetes.io"
        );
        let mut stack = vec![&crd];
        while let Some(v) = stack.pop() {
            match v {
                Value::Object(m) => {
                    assert!(
                        !m.contains_key("x-kubernetes-validations"),
                        "CEL in {kinds:?}"
                    );
                    if let Some(Value::Array(e)) = m.get("enum") {
                        assert!(
                            !e.iter().any(Value::is_null),
                            "null in an enum of {kinds:?}"
                        );
                    }
                    stack.extend(m.values());
                }
                Value::Array(a) => stack.extend(a),
                _ => {}
            }
        }
    }
    assert_eq!(
        kinds,
        ["GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant"]
    );
}
