//! Helpers for `status.conditions`: the schema that makes them a list map keyed by `type`.

use schemars::Schema;
use schemars::generate::SchemaGenerator;

/// Schema of a `conditions` list: `metav1.Condition` items, a list map keyed by `type`, so server-side
/// apply merges conditions written by different field managers instead of replacing the whole list.
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema =
        generator.subschema_for::<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}
