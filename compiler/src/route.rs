//! One HTTPRoute's rules, compiled once whatever the listeners it attaches to: matches with their
//! defaults and resolved weighted backends.

use std::collections::BTreeSet;

use agentgateway_crds::gateway_api::{HTTPRoute, HTTPRouteFilter, HTTPRouteRule};
use agentgateway_crds::proxy_config::{MatchConfig, WeightedBackend};

use crate::backend::BackendTable;
use crate::backend_ref::resolve_backend_ref;
use crate::diagnostic::{Diagnostic, Reason};
use crate::index::Index;
use crate::inputs::ObjectRef;
use crate::matches::{compile_match, match_everything};

/// A compiled rule.
pub(crate) struct CompiledRule {
    /// The rule's index in the route.
    pub(crate) index: u32,
    /// The weighted backends, unresolved ones without a backend.
    pub(crate) backends: Vec<WeightedBackend>,
    /// The valid matches with their index in the rule; empty when every match was invalid.
    pub(crate) matches: Vec<(u32, MatchConfig)>,
}

/// A compiled route.
pub(crate) struct CompiledRoute {
    pub(crate) object: ObjectRef,
    pub(crate) rules: Vec<CompiledRule>,
    /// Problems with matches and backendRefs.
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// Existing backends the route names, accepted or not, whose own problems belong in reports.
    pub(crate) named_backends: BTreeSet<String>,
}

/// Compiles the route's rules, resolving backendRefs through `backends`.
pub(crate) fn compile_route(
    index: &Index<'_>,
    backends: &mut BackendTable<'_>,
    route: &HTTPRoute,
) -> CompiledRoute {
    let object = ObjectRef::of(route);
    let mut diagnostics = Vec::new();
    let mut named_backends = BTreeSet::new();
    let mut rules = Vec::new();
    for (r, rule) in route.spec.rules.iter().enumerate() {
        let matches = if rule.matches.is_empty() {
            vec![(0, match_everything())]
        } else {
            let mut matches = Vec::new();
            for (m, spec) in rule.matches.iter().enumerate() {
                match compile_match(&object, &format!("spec.rules[{r}].matches[{m}]"), spec) {
                    Ok(compiled) => matches.push((to_u32(m), compiled)),
                    Err(mut problems) => diagnostics.append(&mut problems),
                }
            }
            matches
        };
        // A rule this version cannot serve as written is reported and not served: without its
        // header rewrite, redirect or timeout it would do something else than it says.
        let unsupported = unsupported_fields(&object, r, rule);
        let matches = if unsupported.is_empty() {
            matches
        } else {
            diagnostics.extend(unsupported);
            Vec::new()
        };
        let mut weighted = Vec::new();
        for (b, backend_ref) in rule.backend_refs.iter().enumerate() {
            let field = format!("spec.rules[{r}].backendRefs[{b}]");
            let mut resolved = resolve_backend_ref(index, backends, &object, &field, backend_ref);
            diagnostics.append(&mut resolved.diagnostics);
            named_backends.extend(resolved.names_backend);
            weighted.push(resolved.weighted);
        }
        rules.push(CompiledRule {
            index: to_u32(r),
            backends: weighted,
            matches,
        });
    }
    CompiledRoute {
        object,
        rules,
        diagnostics,
        named_backends,
    }
}

/// The filters and timeouts of rule `r`, which this version does not implement.
fn unsupported_fields(route: &ObjectRef, r: usize, rule: &HTTPRouteRule) -> Vec<Diagnostic> {
    let filter = |field: String, filter: &HTTPRouteFilter| {
        // The type is the user's text: quoted, and cut to a name's length.
        let kind: String = filter.filter_type.chars().take(64).collect();
        let message = format!(
            "{kind:?} filters are not supported by this version of the proxy: the rule is not served rather than served without it"
        );
        Diagnostic::new(route, field, Reason::UnsupportedValue, message)
    };
    let mut found: Vec<Diagnostic> = rule
        .filters
        .iter()
        .enumerate()
        .map(|(f, spec)| filter(format!("spec.rules[{r}].filters[{f}].type"), spec))
        .collect();
    for (b, backend_ref) in rule.backend_refs.iter().enumerate() {
        found.extend(backend_ref.filters.iter().enumerate().map(|(f, spec)| {
            filter(
                format!("spec.rules[{r}].backendRefs[{b}].filters[{f}].type"),
                spec,
            )
        }));
    }
    if let Some(timeouts) = &rule.timeouts {
        for (name, value) in [
            ("request", &timeouts.request),
            ("backendRequest", &timeouts.backend_request),
        ] {
            if value.is_some() {
                found.push(Diagnostic::new(
                    route,
                    format!("spec.rules[{r}].timeouts.{name}"),
                    Reason::UnsupportedValue,
                    "route timeouts are not supported by this version of the proxy (set spec.policies.timeouts on the AgentgatewayBackend): the rule is not served".to_string(),
                ));
            }
        }
    }
    found
}

/// Indexes as the config stores them; no real route has four billion rules.
pub(crate) fn to_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}
