//! Prints the Gateway API CRDs that agentgateway reads (GatewayClass, Gateway, HTTPRoute, ReferenceGrant)
//! as one multi-document YAML that Kubernetes 1.20 accepts.
//!
//! Source: the `gateway-api` crate 0.22.0 (Gateway API v1.5.1, standard channel), whose types kopium
//! generated from the upstream CRDs; `kube`'s `CustomResourceExt::crd()` turns them back into CRDs with a
//! structural schema. Then, for Kubernetes 1.20 (which has no CEL):
//! * every `x-kubernetes-validations` (CEL) rule is removed: 1.20 does not know the field, kubectl and
//!   Helm reject CRDs that carry it, and server-side apply fails with "field not declared in schema";
//! * the upstream printer columns, short names, category and bundle annotations are added back
//!   (the derived CRDs have none);
//! * every CRD also serves its other upstream version with the same schema (no conversion needed):
//!   `v1beta1` for GatewayClass, Gateway and HTTPRoute (`v1` is stored); `v1` for ReferenceGrant
//!   (`v1beta1`, the version agentgateway reads, is stored).
//!
//! The schema is derived from the Rust types, so upstream `default`s (e.g. a backendRef's `weight: 1`,
//! a match's `PathPrefix /`) are not applied by the API server: readers must apply them.

use gateway_api::gatewayclasses::GatewayClass;
use gateway_api::gateways::Gateway;
use gateway_api::httproutes::HttpRoute;
use gateway_api::referencegrants::ReferenceGrant;
use kube::CustomResourceExt;
use serde_json::{Value, json};

const BUNDLE_VERSION: &str = "v1.5.1";
const CRATE: &str = "gateway-api 0.22.0";

fn main() {
    let crds = [
        GatewayClass::crd(),
        Gateway::crd(),
        HttpRoute::crd(),
        ReferenceGrant::crd(),
    ];
    let mut docs = String::new();
    let mut removed_total = 0;
    let mut nulls_total = 0;
    for crd in crds {
        let mut crd = serde_json::to_value(&crd).expect("CRD serializes");
        removed_total += strip_key(&mut crd, "x-kubernetes-validations");
        nulls_total += strip_null_enum_values(&mut crd);
        let kind = crd["spec"]["names"]["kind"]
            .as_str()
            .expect("kind")
            .to_owned();
        decorate(&mut crd, &kind);
        docs.push_str("---\n");
        docs.push_str(&serde_yaml::to_string(&crd).expect("CRD as YAML"));
    }
    let mut out = String::new();
    out.push_str(&format!(
        "# Gateway API {BUNDLE_VERSION} CRDs (standard channel: GatewayClass, Gateway, HTTPRoute, ReferenceGrant)\n\
         # for Kubernetes 1.20+ without CEL. GENERATED, do not edit: run e2e/tools/gateway-api-crds/generate.sh\n\
         # Made from the Rust types of the `{CRATE}` crate (kube CustomResourceExt::crd()), then:\n\
         # - `x-kubernetes-validations` (CEL) rules removed, {removed_total} in this output (1.20 rejects the field;\n\
         #   the derived schema carries none today: kopium drops them; the generator strips any that appear);\n\
         # - `null` removed from the `enum` lists of optional enums ({nulls_total}; `nullable: true` stays):\n\
         #   kubectl's validation rejects them (unknown object type \"nil\");\n\
         # - annotation api-approved.kubernetes.io added (required for the protected *.k8s.io groups);\n\
         # - upstream printer columns, short names, category and bundle annotations added;\n\
         # - the other upstream version served with the same schema (v1beta1 for GatewayClass/Gateway/HTTPRoute,\n\
         #   v1 for ReferenceGrant, whose stored version is v1beta1).\n\
         # Upstream schema defaults are not part of the derived schema: readers apply them.\n"
    ));
    out.push_str(&docs);
    print!("{out}");
}

/// Removes `key` from every object in the tree; returns how many were removed.
fn strip_key(v: &mut Value, key: &str) -> usize {
    match v {
        Value::Object(map) => {
            let mut n = usize::from(map.remove(key).is_some());
            for child in map.values_mut() {
                n += strip_key(child, key);
            }
            n
        }
        Value::Array(items) => items.iter_mut().map(|c| strip_key(c, key)).sum(),
        _ => 0,
    }
}

/// Removes `null` from every `enum` list (schemars lists it for `Option<Enum>`, next to
/// `nullable: true`); returns how many were removed.
fn strip_null_enum_values(v: &mut Value) -> usize {
    match v {
        Value::Object(map) => {
            let mut n = 0;
            if let Some(Value::Array(values)) = map.get_mut("enum") {
                let before = values.len();
                values.retain(|x| !x.is_null());
                n += before - values.len();
            }
            for (key, child) in map.iter_mut() {
                // an object property may be called "enum": only recurse into schemas
                if key != "enum" || child.is_object() {
                    n += strip_null_enum_values(child);
                }
            }
            n
        }
        Value::Array(items) => items.iter_mut().map(strip_null_enum_values).sum(),
        _ => 0,
    }
}

fn col(name: &str, path: &str, ty: &str) -> Value {
    json!({"name": name, "jsonPath": path, "type": ty})
}

fn age() -> Value {
    col("Age", ".metadata.creationTimestamp", "date")
}

fn decorate(crd: &mut Value, kind: &str) {
    crd["metadata"]["annotations"] = json!({
        "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/2466",
        "gateway.networking.k8s.io/bundle-version": BUNDLE_VERSION,
        "gateway.networking.k8s.io/channel": "standard",
        "agentgateway.dev/generated-by": format!("e2e/tools/gateway-api-crds from {CRATE}; CEL rules removed"),
    });
    let names = &mut crd["spec"]["names"];
    names["categories"] = json!(["gateway-api"]);
    let (short, columns, other_version): (&[&str], Vec<Value>, &str) = match kind {
        "GatewayClass" => (
            &["gc"],
            vec![
                col("Controller", ".spec.controllerName", "string"),
                col(
                    "Accepted",
                    ".status.conditions[?(@.type==\"Accepted\")].status",
                    "string",
                ),
                age(),
                json!({"name": "Description", "jsonPath": ".spec.description", "type": "string", "priority": 1}),
            ],
            "v1beta1",
        ),
        "Gateway" => (
            &["gtw"],
            vec![
                col("Class", ".spec.gatewayClassName", "string"),
                col("Address", ".status.addresses[*].value", "string"),
                col(
                    "Programmed",
                    ".status.conditions[?(@.type==\"Programmed\")].status",
                    "string",
                ),
                age(),
            ],
            "v1beta1",
        ),
        "HTTPRoute" => (
            &[],
            vec![col("Hostnames", ".spec.hostnames", "string"), age()],
            "v1beta1",
        ),
        "ReferenceGrant" => (&["refgrant"], vec![age()], "v1"),
        other => panic!("unexpected kind {other}"),
    };
    if !short.is_empty() {
        names["shortNames"] = json!(short);
    }
    let versions = crd["spec"]["versions"]
        .as_array_mut()
        .expect("spec.versions");
    assert_eq!(versions.len(), 1, "{kind}: one version expected");
    let mut version = versions[0].take();
    version["additionalPrinterColumns"] = Value::Array(columns);
    let mut other = version.clone();
    other["name"] = json!(other_version);
    other["storage"] = json!(false);
    if kind == "ReferenceGrant" {
        // the crate's ReferenceGrant is v1; agentgateway reads (and 1.20-era clusters store) v1beta1
        version["name"] = json!("v1beta1");
    }
    *versions = vec![version, other];
}
