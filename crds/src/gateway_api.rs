//! The subset of the Gateway API (`gateway.networking.k8s.io`) that agentgateway reads and writes.
//! Unknown fields are ignored on read, so objects written for newer Gateway API versions still parse.
//! These are not our CRDs: no YAML is generated from them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `GatewayClass`: which controller implements Gateways of a class.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "GatewayClass",
    status = "GatewayClassStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassSpec {
    /// The controller that manages Gateways of this class.
    pub controller_name: String,
    /// Free-form description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Parameters for every Gateway of the class (for agentgateway: an `AgentgatewayParameters`,
    /// which a Gateway's own `infrastructure.parametersRef` overrides field by field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_ref: Option<ClassParametersReference>,
}

/// A GatewayClass's reference to its parameters (Gateway API `ParametersReference`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClassParametersReference {
    /// The group of the referent (`agentgateway.dev`).
    pub group: String,
    /// The kind of the referent (`AgentgatewayParameters`).
    pub kind: String,
    /// The referent's name.
    pub name: String,
    /// The referent's namespace (required for a namespaced kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Status of a GatewayClass.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassStatus {
    /// `Accepted` and friends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// `Gateway`: a set of listeners; each Gateway of our class becomes a proxy Deployment.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "Gateway",
    namespaced,
    status = "GatewayStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// The GatewayClass of this Gateway.
    pub gateway_class_name: String,
    /// The listeners (ports) of this Gateway.
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// Gateway-wide TLS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<GatewayTLSSettings>,
    /// Labels, annotations and parameters of the objects that run the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure: Option<GatewayInfrastructure>,
}

/// Gateway-wide TLS settings (Gateway API `spec.tls`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTLSSettings {
    /// Client certificate validation on the HTTPS listeners (mutual TLS). agentgateway does not
    /// validate client certificates: with this set, its HTTPS listeners are not served rather than
    /// served without the validation asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend: Option<serde_json::Value>,
}

/// Gateway API `GatewayInfrastructure`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewayInfrastructure {
    /// Labels of every object created for the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
    /// Annotations of every object created for the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
    /// The Gateway's own parameters, in its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_ref: Option<LocalParametersReference>,
}

/// Gateway API `LocalParametersReference`: an object in the Gateway's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LocalParametersReference {
    /// The group of the referent (`agentgateway.dev`).
    pub group: String,
    /// The kind of the referent (`AgentgatewayParameters`).
    pub kind: String,
    /// The referent's name.
    pub name: String,
}

/// One listener of a Gateway.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// The listener's name, unique within the Gateway; routes select it with `sectionName`.
    pub name: String,
    /// The host name this listener serves; routes' hostnames must intersect it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The port the proxy listens on.
    pub port: i32,
    /// `HTTP` or `HTTPS` (served by agentgateway); `TLS`, `TCP`, `UDP` are reported unsupported.
    pub protocol: String,
    /// How TLS is handled on an `HTTPS` listener: the certificates it terminates with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<GatewayTLSConfig>,
    /// Which routes may attach (namespaces, kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_routes: Option<AllowedRoutes>,
}

/// A listener's TLS settings (Gateway API v1 `GatewayTLSConfig`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTLSConfig {
    /// `Terminate` (the default: the proxy ends TLS with `certificateRefs`) or `Passthrough`
    /// (not supported by agentgateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The certificates to serve, as `kubernetes.io/tls` Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_refs: Vec<SecretObjectReference>,
    /// Implementation-specific TLS settings; agentgateway defines none, so any entry is reported.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// A reference to a Secret (or another certificate-holding kind), possibly in another namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretObjectReference {
    /// The API group; `""` (the default) is the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The kind; `Secret` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The object's name.
    pub name: String,
    /// Defaults to the Gateway's namespace; another namespace needs a ReferenceGrant there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Which routes may attach to a listener.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AllowedRoutes {
    /// The namespaces routes may come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<RouteNamespaces>,
}

/// The namespaces routes may come from.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RouteNamespaces {
    /// `Same` (the default), `All` or `Selector` (treated as `All` by the standalone compiler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// Status of a Gateway.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// `Accepted`, `Programmed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Per-listener status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,
}

/// Status of one listener.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// How many routes attach to the listener.
    pub attached_routes: i32,
    /// The route kinds the listener supports.
    #[serde(default)]
    pub supported_kinds: Vec<RouteGroupKind>,
    /// `Accepted`, `Programmed`, `ResolvedRefs`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A route kind.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RouteGroupKind {
    /// API group of the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The kind.
    pub kind: String,
}

/// `HTTPRoute`: matches requests and sends them to weighted backends.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    plural = "httproutes",
    namespaced,
    status = "HTTPRouteStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteSpec {
    /// The Gateways (and listeners) this route attaches to.
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    /// Host names matched against the request's Host header; empty matches every host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// The rules; a route without rules matches nothing.
    #[serde(default)]
    pub rules: Vec<HTTPRouteRule>,
}

/// A reference to a parent (a Gateway, optionally one of its listeners).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// Defaults to `gateway.networking.k8s.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Defaults to `Gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Defaults to the route's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The parent's name.
    pub name: String,
    /// A listener name of the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// A listener port of the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// One rule: matches (any of them) and the backends that serve what matches.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteRule {
    /// Optional rule name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A request matches the rule when it matches any of these; none means `PathPrefix /`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HTTPRouteMatch>,
    /// Weighted backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<HTTPBackendRef>,
    /// Filters for requests the rule matches: header modifiers, a redirect or a URL rewrite; a
    /// rule with a filter this version does not implement is reported and not served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HTTPRouteFilter>,
    /// The deadline of a whole request and of one attempt on a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HTTPRouteTimeouts>,
}

/// A filter of a rule or a backendRef (Gateway API v1 `HTTPRouteFilter`): its type and the
/// configuration of that type. Types this version does not implement (`RequestMirror`, `CORS`,
/// `ExtensionRef`, `ExternalAuth`, ...) still parse: their `type` is kept, so they are reported,
/// never dropped in silence.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteFilter {
    /// `RequestHeaderModifier`, `ResponseHeaderModifier`, `RequestRedirect`, `URLRewrite`,
    /// `RequestMirror`, `CORS`, `ExtensionRef`, ...
    #[serde(rename = "type")]
    pub filter_type: String,
    /// The configuration of a `RequestHeaderModifier` filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HTTPHeaderFilter>,
    /// The configuration of a `ResponseHeaderModifier` filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HTTPHeaderFilter>,
    /// The configuration of a `RequestRedirect` filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<HTTPRequestRedirectFilter>,
    /// The configuration of a `URLRewrite` filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<HTTPURLRewriteFilter>,
}

/// Header changes: `set` replaces (or adds), `add` appends, `remove` deletes; names are
/// case-insensitive.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPHeaderFilter {
    /// Headers to set, replacing any value the message has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HTTPHeader>,
    /// Headers to append to the message's values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HTTPHeader>,
    /// Header names to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPHeader {
    /// The name, case-insensitive.
    pub name: String,
    /// The value.
    pub value: String,
}

/// A `RequestRedirect` filter: the gateway answers with a redirect itself.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRequestRedirectFilter {
    /// `http` or `https`; defaults to the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The host; defaults to the request's `Host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// How the path changes; absent keeps the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HTTPPathModifier>,
    /// The port; defaults to the scheme's well-known port when `scheme` is set, else the
    /// listener's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// 301, 302 (the default), 303, 307 or 308.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i32>,
}

/// A `URLRewrite` filter: the request is forwarded with another host or path.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPURLRewriteFilter {
    /// The `Host` to forward with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// How the path changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HTTPPathModifier>,
}

/// A path change of a redirect or a rewrite.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPPathModifier {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(rename = "type")]
    pub modifier_type: String,
    /// The path that replaces the request's (`ReplaceFullPath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_full_path: Option<String>,
    /// What replaces the prefix the rule's `PathPrefix` match matched (`ReplacePrefixMatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
}

/// A rule's timeouts (Gateway API durations, e.g. `10s`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteTimeouts {
    /// The whole request; `0s`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// One attempt on a backend; `0s`: none. At most `request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
}

/// Conditions that all must hold.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteMatch {
    /// Path match; defaults to `PathPrefix /`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HTTPPathMatch>,
    /// Header matches; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HTTPHeaderMatch>,
    /// Query parameter matches; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<HTTPQueryParamMatch>,
    /// The HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// A path match.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPPathMatch {
    /// `Exact`, `PathPrefix` (default) or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub match_type: Option<String>,
    /// The path; defaults to `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A header match.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPHeaderMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub match_type: Option<String>,
    /// Header name, case-insensitive.
    pub name: String,
    /// The value.
    pub value: String,
}

/// A query parameter match.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPQueryParamMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub match_type: Option<String>,
    /// Parameter name, case-sensitive.
    pub name: String,
    /// The value.
    pub value: String,
}

/// A weighted reference to a backend.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPBackendRef {
    /// `agentgateway.dev` for an `AgentgatewayBackend`; empty for a core `Service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `AgentgatewayBackend` or `Service` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The backend's name.
    pub name: String,
    /// Defaults to the route's namespace; another namespace needs a ReferenceGrant there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Service port (Services only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Relative weight; defaults to 1; 0 sends nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Filters for requests sent to this backend: header modifiers only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HTTPRouteFilter>,
}

/// Status of an HTTPRoute: one entry per parent.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteStatus {
    /// Status per parent Gateway.
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

/// Status of a route with respect to one parent.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    /// The parent.
    pub parent_ref: ParentReference,
    /// The controller that wrote this entry.
    pub controller_name: String,
    /// `Accepted`, `ResolvedRefs`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// `ReferenceGrant` (v1beta1): lets objects in other namespaces refer to objects in this one.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1beta1",
    kind = "ReferenceGrant",
    namespaced
)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrantSpec {
    /// Who may refer.
    pub from: Vec<ReferenceGrantFrom>,
    /// To what.
    pub to: Vec<ReferenceGrantTo>,
}

/// The referrers a ReferenceGrant admits.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrantFrom {
    /// The referrer's group (`gateway.networking.k8s.io` for HTTPRoutes).
    pub group: String,
    /// The referrer's kind.
    pub kind: String,
    /// The referrer's namespace.
    pub namespace: String,
}

/// The referents a ReferenceGrant admits.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceGrantTo {
    /// The referent's group (`agentgateway.dev`, or empty for core).
    pub group: String,
    /// The referent's kind.
    pub kind: String,
    /// Only this object, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}
