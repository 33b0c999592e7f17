//! One HTTPRoute's rules, compiled once whatever the listeners it attaches to: matches with their
//! defaults, resolved weighted backends, filters and timeouts.

use std::collections::BTreeSet;

use agentgateway_crds::gateway_api::HTTPRoute;
use agentgateway_crds::proxy_config::{MatchConfig, WeightedBackend};

use crate::backend::BackendTable;
use crate::backend_ref::resolve_backend_ref;
use crate::diagnostic::Diagnostic;
use crate::filters::{RuleFilters, compile_backend_filters, compile_rule_filters};
use crate::index::Index;
use crate::inputs::ObjectRef;
use crate::matches::{compile_match, match_everything};

/// A compiled rule.
pub(crate) struct CompiledRule {
    /// The rule's index in the route.
    pub(crate) index: u32,
    /// The weighted backends, unresolved ones without a backend.
    pub(crate) backends: Vec<WeightedBackend>,
    /// The valid matches with their index in the rule; empty when every match was invalid, or
    /// when the rule's filters or timeouts have a problem (the rule is not served).
    pub(crate) matches: Vec<(u32, MatchConfig)>,
    /// What the rule's filters and timeouts add to its config.
    pub(crate) filters: RuleFilters,
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
        // A rule whose filters or timeouts have a problem is reported and not served: without
        // its header rewrite, redirect or timeout it would do something else than it says.
        let mut served = true;
        let filters = match compile_rule_filters(&object, r, rule) {
            Ok(filters) => filters,
            Err(mut problems) => {
                diagnostics.append(&mut problems);
                served = false;
                RuleFilters::default()
            }
        };
        let mut weighted = Vec::new();
        for (b, backend_ref) in rule.backend_refs.iter().enumerate() {
            let field = format!("spec.rules[{r}].backendRefs[{b}]");
            let mut resolved = resolve_backend_ref(index, backends, &object, &field, backend_ref);
            diagnostics.append(&mut resolved.diagnostics);
            named_backends.extend(resolved.names_backend);
            match compile_backend_filters(&object, &field, &backend_ref.filters) {
                Ok((request, response)) => {
                    resolved.weighted.request_headers = request;
                    resolved.weighted.response_headers = response;
                }
                Err(mut problems) => {
                    diagnostics.append(&mut problems);
                    served = false;
                }
            }
            weighted.push(resolved.weighted);
        }
        let matches = if served { matches } else { Vec::new() };
        rules.push(CompiledRule {
            index: to_u32(r),
            backends: weighted,
            matches,
            filters,
        });
    }
    CompiledRoute {
        object,
        rules,
        diagnostics,
        named_backends,
    }
}

/// Indexes as the config stores them; no real route has four billion rules.
pub(crate) fn to_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}
