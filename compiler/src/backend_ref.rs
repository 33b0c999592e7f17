//! A route's `backendRefs`: kind, cross-namespace permission, existence and acceptance. A ref that
//! does not resolve keeps its weight with no backend, so its share of requests gets a 500 as the
//! Gateway API requires, instead of silently shifting traffic to the other backends.

use agentgateway_crds::GROUP;
use agentgateway_crds::gateway_api::HTTPBackendRef;
use agentgateway_crds::proxy_config::WeightedBackend;
use agentgateway_crds::validation::MAX_BACKEND_WEIGHT;

use crate::backend::BackendTable;
use crate::diagnostic::{Diagnostic, Reason};
use crate::index::Index;
use crate::inputs::ObjectRef;

/// A resolved ref, the backend key it names (when it names an existing backend, accepted or not),
/// and the problems found.
pub(crate) struct ResolvedRef {
    pub(crate) weighted: WeightedBackend,
    pub(crate) names_backend: Option<String>,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

/// Resolves the ref at `field` (`spec.rules[r].backendRefs[b]`) of `route`.
pub(crate) fn resolve_backend_ref(
    index: &Index<'_>,
    backends: &mut BackendTable<'_>,
    route: &ObjectRef,
    field: &str,
    backend_ref: &HTTPBackendRef,
) -> ResolvedRef {
    let mut diagnostics = Vec::new();
    let weight = match backend_ref.weight {
        None => 1,
        Some(weight) if (0..=MAX_BACKEND_WEIGHT).contains(&weight) => weight.unsigned_abs(),
        Some(weight) => {
            let message = format!("{weight} must be between 0 and {MAX_BACKEND_WEIGHT}");
            diagnostics.push(Diagnostic::new(
                route,
                format!("{field}.weight"),
                Reason::InvalidSpec,
                message,
            ));
            0
        }
    };
    let (backend, names_backend) = match resolve_target(index, backends, route, field, backend_ref)
    {
        Ok(key) => (Some(key.clone()), Some(key)),
        Err((problem, names_backend)) => {
            diagnostics.push(problem);
            (None, names_backend)
        }
    };
    ResolvedRef {
        weighted: WeightedBackend {
            backend,
            weight,
            policy: None,
            request_headers: None,
            response_headers: None,
        },
        names_backend,
        diagnostics,
    }
}

/// The key of the accepted backend the ref names, or the problem (and the key of an existing but
/// unaccepted backend, so its own diagnostics can be reported next to the route's).
fn resolve_target(
    index: &Index<'_>,
    backends: &mut BackendTable<'_>,
    route: &ObjectRef,
    field: &str,
    backend_ref: &HTTPBackendRef,
) -> Result<String, (Diagnostic, Option<String>)> {
    let group = backend_ref.group.as_deref().unwrap_or_default();
    let kind = backend_ref.kind.as_deref().unwrap_or("Service");
    let problem = |reason, message: String| (Diagnostic::new(route, field, reason, message), None);
    match (group, kind) {
        (GROUP, "AgentgatewayBackend") => {}
        ("" | "core", "Service") => {
            let message = format!(
                "Service {} is not supported by this version of the proxy: refer to an AgentgatewayBackend (group {GROUP})",
                backend_ref.name
            );
            return Err(problem(Reason::InvalidKind, message));
        }
        _ => {
            let group = if group.is_empty() { "core" } else { group };
            let message = format!(
                "unsupported backend kind {kind} (group {group}): expected AgentgatewayBackend (group {GROUP})"
            );
            return Err(problem(Reason::InvalidKind, message));
        }
    }
    let namespace = backend_ref.namespace.as_deref().unwrap_or(&route.namespace);
    let key = format!("{namespace}/{}", backend_ref.name);
    if namespace != route.namespace
        && !index.route_may_refer_to_backend(&route.namespace, namespace, &backend_ref.name)
    {
        let message = format!(
            "AgentgatewayBackend {key} is in another namespace and no ReferenceGrant in {namespace} allows HTTPRoutes of {} to refer to it",
            route.namespace
        );
        return Err(problem(Reason::RefNotPermitted, message));
    }
    match backends.get(&key) {
        None => Err(problem(
            Reason::BackendNotFound,
            format!("AgentgatewayBackend {key} not found"),
        )),
        Some(Ok(_)) => Ok(key),
        Some(Err(problems)) => {
            let why = problems
                .first()
                .map(|d| format!(": {}: {}", d.field, d.message))
                .unwrap_or_default();
            let message = format!("AgentgatewayBackend {key} is not accepted{why}");
            Err((
                Diagnostic::new(route, field, Reason::BackendNotFound, message),
                Some(key),
            ))
        }
    }
}
