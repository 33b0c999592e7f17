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

/// Condition types the operator writes (Gateway API's, and ours where it defines none).
pub mod types {
    /// The object is valid and taken on (Gateway, listener, route parent, backend, class).
    pub const ACCEPTED: &str = "Accepted";
    /// The proxy serves the object's config (Gateway, listener, route parent).
    pub const PROGRAMMED: &str = "Programmed";
    /// Every reference of the object resolves (listener, route parent).
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// Some of a route's matches lose to identical matches of routes that take precedence, so
    /// they receive no traffic (route parent; as Gateway API's listener condition of that name).
    pub const CONFLICTED: &str = "Conflicted";
}

/// Condition reasons the operator writes itself; the compiler's reasons (`InvalidSpec`,
/// `BackendNotFound`, ...) are its `Reason` enum.
pub mod reasons {
    /// `Accepted=True`.
    pub const ACCEPTED: &str = "Accepted";
    /// `Programmed=True`: every ready proxy replica serves the config last written.
    pub const PROGRAMMED: &str = "Programmed";
    /// `ResolvedRefs=True`.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// `Conflicted=False`.
    pub const NO_CONFLICTS: &str = "NoConflicts";
    /// `Programmed=False`: written, not yet served by every ready replica.
    pub const PENDING: &str = "Pending";
    /// `Programmed=False` on a listener that is not accepted.
    pub const INVALID: &str = "Invalid";
    /// `Programmed=False`: a proxy replica refused the written config.
    pub const CONFIG_REJECTED: &str = "ConfigRejected";
    /// `Programmed=False`: the API server refused a write of the proxy's objects.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// `Programmed=False`: an object the proxy needs exists and is controlled by someone else.
    pub const RESOURCE_CONFLICT: &str = "ResourceConflict";
    /// `Programmed=False`: the config does not fit a ConfigMap, even compressed.
    pub const CONFIG_TOO_LARGE: &str = "ConfigTooLarge";
    /// `Accepted=False` on a Gateway or GatewayClass whose `parametersRef` names a missing object,
    /// another kind, or invalid `AgentgatewayParameters` (Gateway API's reason).
    pub const INVALID_PARAMETERS: &str = "InvalidParameters";
    /// Event: a Gateway left our class and its proxy objects were deleted.
    pub const RELEASED: &str = "Released";
}
