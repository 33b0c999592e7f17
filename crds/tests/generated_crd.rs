//! The committed CRD YAML is exactly what the Rust types generate (`make generate` updates it).

#[test]
fn committed_crd_yaml_matches_the_rust_types() {
    let committed = include_str!("../agentgateway.dev.yaml");
    let generated = agentgateway_crds::crd_yaml().expect("CRD serializes");
    assert!(
        committed == generated,
        "crds/agentgateway.dev.yaml is stale: run `make generate`"
    );
}

#[test]
fn the_crd_has_the_printer_columns_short_name_and_status_subresource() {
    let yaml = agentgateway_crds::crd_yaml().expect("CRD serializes");
    for needle in [
        "jsonPath: .status.conditions[?(@.type==\"Accepted\")].status",
        "name: Accepted",
        "- agbe",
        "- agentgateway",
        "subresources:\n      status: {}",
        "x-kubernetes-list-type: map",
    ] {
        assert!(yaml.contains(needle), "missing {needle:?}");
    }
}
