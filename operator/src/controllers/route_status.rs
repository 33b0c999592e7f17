//! The status of an HTTPRoute towards our Gateways, as a pure function of the compiler's
//! diagnostics and of the Gateways' `Programmed` condition: one `status.parents[]` entry per
//! parentRef to a Gateway of ours, with `Accepted`, `ResolvedRefs` and `Programmed`. Entries of
//! other controllers are kept as they are.
//!
//! `Programmed` is ours (Gateway API defines no such route condition): `False` with the Gateway's
//! reason (and a message pointing at the Gateway) when the Gateway's config could not be delivered to its proxy (a
//! conflicting object, a config too large, a refused write, a config the proxy rejected), so that
//! a route whose backends never reached the proxy says so where its owner looks, not only on a
//! Gateway that may live in another team's namespace. A Gateway that is merely `Pending` (its
//! proxy still loading) leaves routes `True`: that state passes with every change, and flipping a
//! thousand routes' status on each would cost more than it tells.

use std::collections::BTreeMap;

use agentgateway_compiler::{Diagnostic, ObjectRef, Reason};
use agentgateway_crds::conditions::{reasons, types};
use agentgateway_crds::gateway_api::{HTTPRoute, ParentReference, RouteParentStatus};
use agentgateway_crds::{CONTROLLER_NAME, GATEWAY_API_GROUP};
use k8s_openapi::jiff::Timestamp;

use crate::cache::inputs::gateway_key;
use crate::conditions::{self, Desired};
use crate::route_views::RouteView;

/// Our entry for one parentRef, before times are assigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredParent {
    /// The parentRef, as in the spec.
    pub parent_ref: ParentReference,
    /// `Accepted`, `ResolvedRefs`.
    pub conditions: Vec<Desired>,
}

/// Our entries: one per distinct parentRef naming a Gateway in `ours` (by `namespace/name`).
pub fn desired_parents(
    route: &HTTPRoute,
    ours: &BTreeMap<String, RouteView>,
) -> Vec<DesiredParent> {
    let generation = route.metadata.generation;
    let object = ObjectRef::of(route);
    let mut parents: Vec<DesiredParent> = Vec::new();
    for (i, parent) in route.spec.parent_refs.iter().enumerate() {
        let Some((gateway, input)) =
            gateway_key(route, parent).and_then(|key| ours.get(&key).map(|input| (key, input)))
        else {
            continue;
        };
        let diagnostics = &input.diagnostics;
        if parents.iter().any(|p| same_parent(&p.parent_ref, parent)) {
            continue;
        }
        let (conflicts, own): (Vec<&Diagnostic>, Vec<&Diagnostic>) = diagnostics
            .iter()
            .filter(|d| d.object == object)
            .partition(|d| d.reason == Reason::RuleMatchConflict);
        let this_parent = format!("spec.parentRefs[{i}]");
        // A backendRef that does not resolve (`ResolvedRefs`); a backendRef's filter is the
        // route's own problem (`Accepted`).
        let is_backend_ref =
            |d: &&&Diagnostic| d.field.contains(".backendRefs[") && !d.field.contains(".filters[");
        let attach_problem = own.iter().find(|d| d.field == this_parent);
        let route_problem = own
            .iter()
            .filter(|d| !d.field.starts_with("spec.parentRefs"))
            .find(|d| !is_backend_ref(d));
        let accepted = match (attach_problem, route_problem) {
            (Some(d), _) => Desired::new(
                types::ACCEPTED,
                false,
                d.reason.as_str(),
                d.message.clone(),
                generation,
            ),
            // A match the proxy cannot serve is left out; the rest of the route is served.
            (None, Some(d)) if d.field.contains(".matches[") => Desired::new(
                types::ACCEPTED,
                false,
                Reason::UnsupportedValue.as_str(),
                format!("{}: {}", d.field, d.message),
                generation,
            ),
            (None, Some(d)) => Desired::new(
                types::ACCEPTED,
                false,
                d.reason.as_str(),
                format!("{}: {}", d.field, d.message),
                generation,
            ),
            (None, None) => Desired::new(
                types::ACCEPTED,
                true,
                reasons::ACCEPTED,
                "the route is attached",
                generation,
            ),
        };
        // Matches that lose to another route's identical match are still the route's, attached
        // and valid; they just never receive traffic, which the route's owner must be told.
        let conflicted = match conflicts.first() {
            None => Desired::new(
                types::CONFLICTED,
                false,
                reasons::NO_CONFLICTS,
                "no match is shadowed by another route's",
                generation,
            ),
            Some(first) => Desired::new(
                types::CONFLICTED,
                true,
                Reason::RuleMatchConflict.as_str(),
                format!(
                    "{}: {}{}",
                    first.field,
                    first.message,
                    and_more(conflicts.len())
                ),
                generation,
            ),
        };
        let broken: Vec<&&Diagnostic> = own.iter().filter(is_backend_ref).collect();
        let resolved = match broken.first() {
            None => Desired::new(
                types::RESOLVED_REFS,
                true,
                reasons::RESOLVED_REFS,
                "every backendRef resolves",
                generation,
            ),
            Some(d) => {
                let message = format!("{}: {}{}", d.field, d.message, and_more(broken.len()));
                Desired::new(
                    types::RESOLVED_REFS,
                    false,
                    d.reason.as_str(),
                    message,
                    generation,
                )
            }
        };
        let mut conditions = vec![accepted, resolved, conflicted];
        if let Some((delivered, reason)) = &input.delivery {
            conditions.push(if *delivered {
                Desired::new(
                    types::PROGRAMMED,
                    true,
                    reasons::PROGRAMMED,
                    "the route's config is delivered to the Gateway's proxy",
                    generation,
                )
            } else {
                // The Gateway's own message can name a config generation that moves with every
                // change; the route's must not, or each change rewrites every route's status.
                Desired::new(
                    types::PROGRAMMED,
                    false,
                    reason.clone(),
                    format!(
                        "Gateway {gateway} could not program its proxy ({reason}); its Programmed condition says why"
                    ),
                    generation,
                )
            });
        }
        parents.push(DesiredParent {
            parent_ref: parent.clone(),
            conditions,
        });
    }
    parents
}

/// ` (and n more)` after the first of `count` problems.
fn and_more(count: usize) -> String {
    match count {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    }
}

/// Whether two parentRefs name the same parent (group and kind defaulted as the API does).
pub fn same_parent(a: &ParentReference, b: &ParentReference) -> bool {
    let normalize = |p: &ParentReference| ParentReference {
        group: Some(
            p.group
                .clone()
                .unwrap_or_else(|| GATEWAY_API_GROUP.to_string()),
        ),
        kind: Some(p.kind.clone().unwrap_or_else(|| "Gateway".to_string())),
        ..p.clone()
    };
    normalize(a) == normalize(b)
}

fn is_ours(entry: &RouteParentStatus) -> bool {
    entry.controller_name == CONTROLLER_NAME
}

/// Whether the stored entries of ours say exactly what `desired` says (times aside).
pub fn up_to_date(existing: &[RouteParentStatus], desired: &[DesiredParent]) -> bool {
    let ours: Vec<&RouteParentStatus> = existing.iter().filter(|e| is_ours(e)).collect();
    ours.len() == desired.len()
        && desired.iter().all(|want| {
            ours.iter().any(|have| {
                same_parent(&have.parent_ref, &want.parent_ref)
                    && have.conditions.len() == want.conditions.len()
                    && conditions::up_to_date(&have.conditions, &want.conditions)
            })
        })
}

/// The entries to write: other controllers' entries unchanged and in place, then ours, each
/// keeping its conditions' times unless they flipped. Ours for parents no longer wanted go away.
pub fn merge(
    existing: &[RouteParentStatus],
    desired: &[DesiredParent],
    now: Timestamp,
) -> Vec<RouteParentStatus> {
    let mut parents: Vec<RouteParentStatus> =
        existing.iter().filter(|e| !is_ours(e)).cloned().collect();
    for want in desired {
        let stored = existing
            .iter()
            .find(|e| is_ours(e) && same_parent(&e.parent_ref, &want.parent_ref))
            .map(|e| e.conditions.as_slice())
            .unwrap_or_default();
        parents.push(RouteParentStatus {
            parent_ref: want.parent_ref.clone(),
            controller_name: CONTROLLER_NAME.to_string(),
            conditions: conditions::merge(stored, &want.conditions, now),
        });
    }
    parents
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgateway_compiler::{Inputs, compile_gateway};
    use agentgateway_crds::gateway_api::Gateway;

    fn gateway(name: &str) -> Gateway {
        serde_yaml::from_str(&format!(
            "
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: infra}}
spec:
  gatewayClassName: agentgateway
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
"
        ))
        .unwrap()
    }

    fn route(parent_refs: &str, backend: &str) -> HTTPRoute {
        serde_yaml::from_str(&format!(
            "
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: apps, generation: 7}}
spec:
  parentRefs: {parent_refs}
  rules: [{{backendRefs: [{backend}]}}]
"
        ))
        .unwrap()
    }

    fn compile(route: &HTTPRoute, backends: &str) -> BTreeMap<String, RouteView> {
        let inputs = Inputs {
            routes: vec![route.clone()],
            backends: if backends.is_empty() {
                Vec::new()
            } else {
                vec![serde_yaml::from_str(backends).unwrap()]
            },
            ..Inputs::default()
        };
        BTreeMap::from([(
            "infra/gw".to_string(),
            RouteView {
                generation: route.metadata.generation,
                diagnostics: compile_gateway(&gateway("gw"), &inputs).diagnostics,
                delivery: None,
            },
        )])
    }

    const BACKEND: &str = "
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: llm, namespace: apps}
spec:
  ai:
    provider: {host: llm.apps, port: 8000, openai: {}}
";
    const REF: &str = "{group: agentgateway.dev, kind: AgentgatewayBackend, name: llm}";

    fn condition<'a>(parent: &'a DesiredParent, type_: &str) -> &'a Desired {
        parent.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn the_gateways_programmed_condition_is_repeated_on_the_route() {
        let route = route("[{name: gw, namespace: infra}]", REF);
        let mut ours = compile(&route, BACKEND);
        assert!(
            desired_parents(&route, &ours)[0]
                .conditions
                .iter()
                .all(|c| c.type_ != "Programmed")
        );
        ours.get_mut("infra/gw").unwrap().delivery = Some((false, "ConfigTooLarge".into()));
        let parents = desired_parents(&route, &ours);
        let programmed = condition(&parents[0], "Programmed");
        assert!(!programmed.status);
        assert_eq!(programmed.reason, "ConfigTooLarge");
        assert_eq!(
            programmed.message,
            "Gateway infra/gw could not program its proxy (ConfigTooLarge); its Programmed condition says why"
        );
        assert_eq!(programmed.observed_generation, Some(7));
        ours.get_mut("infra/gw").unwrap().delivery = Some((true, "Programmed".into()));
        let parents = desired_parents(&route, &ours);
        let programmed = condition(&parents[0], "Programmed");
        assert!(programmed.status);
        assert_eq!(programmed.reason, "Programmed");
    }

    #[test]
    fn a_route_from_another_namespace_is_refused_and_its_missing_backend_reported() {
        let route = route("[{name: gw, namespace: infra}]", REF);
        let parents = desired_parents(&route, &compile(&route, ""));
        // The listener allows only routes of its own namespace.
        assert_eq!(parents.len(), 1);
        let accepted = condition(&parents[0], "Accepted");
        assert_eq!(
            (accepted.status, accepted.reason.as_str()),
            (false, "NotAllowedByListeners")
        );
        let resolved = condition(&parents[0], "ResolvedRefs");
        assert_eq!(
            (resolved.status, resolved.reason.as_str()),
            (false, "BackendNotFound")
        );
        assert_eq!(resolved.observed_generation, Some(7));
    }

    #[test]
    fn a_backend_refs_header_filter_is_accepted() {
        let filtered = "{group: agentgateway.dev, kind: AgentgatewayBackend, name: llm, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {remove: [x-internal]}}]}";
        let mut route = route("[{name: gw, namespace: infra}]", filtered);
        route.metadata.namespace = Some("infra".into());
        let backend = BACKEND.replace("namespace: apps", "namespace: infra");
        let parents = desired_parents(&route, &compile(&route, &backend));
        let accepted = condition(&parents[0], "Accepted");
        assert!(accepted.status, "{}", accepted.message);
    }

    #[test]
    fn a_filter_is_reported_on_accepted_with_its_field_never_on_resolved_refs() {
        let filtered = "{group: agentgateway.dev, kind: AgentgatewayBackend, name: llm, filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /v1}}}]}";
        let mut route = route("[{name: gw, namespace: infra}]", filtered);
        route.metadata.namespace = Some("infra".into());
        let backend = BACKEND.replace("namespace: apps", "namespace: infra");
        let parents = desired_parents(&route, &compile(&route, &backend));
        let accepted = condition(&parents[0], "Accepted");
        assert_eq!(
            (accepted.status, accepted.reason.as_str()),
            (false, "UnsupportedValue")
        );
        assert!(
            accepted
                .message
                .starts_with("spec.rules[0].backendRefs[0].filters[0].type: \"URLRewrite\" filters are not supported on a backendRef"),
            "{}",
            accepted.message
        );
        let resolved = condition(&parents[0], "ResolvedRefs");
        assert!(resolved.status, "the backend itself resolves");
    }

    #[test]
    fn a_route_whose_match_loses_to_another_routes_stays_accepted_and_is_conflicted() {
        let mut route = route("[{name: gw, namespace: infra}]", REF);
        route.metadata.namespace = Some("infra".into());
        let backend = BACKEND.replace("namespace: apps", "namespace: infra");
        let mut ours = compile(&route, &backend);
        let parents = desired_parents(&route, &ours);
        let conflicted = condition(&parents[0], "Conflicted");
        assert_eq!(
            (conflicted.status, conflicted.reason.as_str()),
            (false, "NoConflicts")
        );
        let conflict = Diagnostic {
            object: ObjectRef::of(&route),
            field: "spec.rules[0].matches[0]".into(),
            reason: Reason::RuleMatchConflict,
            message: "identical to a match of HTTPRoute infra/old".into(),
        };
        ours.get_mut("infra/gw").unwrap().diagnostics.push(conflict);
        let parents = desired_parents(&route, &ours);
        assert!(condition(&parents[0], "Accepted").status);
        assert!(condition(&parents[0], "ResolvedRefs").status);
        let conflicted = condition(&parents[0], "Conflicted");
        assert_eq!(
            (conflicted.status, conflicted.reason.as_str()),
            (true, "RuleMatchConflict")
        );
        assert_eq!(
            conflicted.message,
            "spec.rules[0].matches[0]: identical to a match of HTTPRoute infra/old"
        );
    }

    #[test]
    fn a_route_with_a_resolving_backend_gets_true_conditions() {
        let mut route = route("[{name: gw, namespace: infra}]", REF);
        route.metadata.namespace = Some("infra".into());
        let backend = BACKEND.replace("namespace: apps", "namespace: infra");
        let parents = desired_parents(&route, &compile(&route, &backend));
        assert!(condition(&parents[0], "Accepted").status);
        assert!(condition(&parents[0], "ResolvedRefs").status);
    }

    #[test]
    fn parent_refs_to_other_gateways_get_no_entry_of_ours() {
        let route = route(
            "[{name: elsewhere, namespace: infra}, {name: svc, kind: Service}]",
            REF,
        );
        assert!(desired_parents(&route, &compile(&route, BACKEND)).is_empty());
    }

    #[test]
    fn an_unknown_section_name_is_no_matching_parent() {
        let mut route = route("[{name: gw, namespace: infra, sectionName: nope}]", REF);
        route.metadata.namespace = Some("infra".into());
        let parents = desired_parents(&route, &compile(&route, ""));
        let accepted = condition(&parents[0], "Accepted");
        assert_eq!(accepted.reason, "NoMatchingParent");
    }

    fn foreign() -> RouteParentStatus {
        RouteParentStatus {
            parent_ref: ParentReference {
                name: "other-gw".into(),
                ..ParentReference::default()
            },
            controller_name: "example.com/other".into(),
            conditions: Vec::new(),
        }
    }

    #[test]
    fn other_controllers_entries_are_preserved() {
        let route = route("[{name: gw, namespace: infra}]", REF);
        let desired = desired_parents(&route, &compile(&route, ""));
        let merged = merge(&[foreign()], &desired, Timestamp::UNIX_EPOCH);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0], foreign());
        assert_eq!(merged[1].controller_name, CONTROLLER_NAME);
        assert!(up_to_date(&merged, &desired));
        assert!(!up_to_date(&[foreign()], &desired));
    }

    #[test]
    fn our_entries_for_removed_parents_are_dropped() {
        let route = route("[{name: gw, namespace: infra}]", REF);
        let desired = desired_parents(&route, &compile(&route, ""));
        let stored = merge(&[foreign()], &desired, Timestamp::UNIX_EPOCH);
        assert!(!up_to_date(&stored, &[]));
        assert_eq!(merge(&stored, &[], Timestamp::UNIX_EPOCH), [foreign()]);
    }

    #[test]
    fn a_defaulted_parent_ref_is_the_same_parent() {
        let spec = ParentReference {
            name: "gw".into(),
            ..ParentReference::default()
        };
        let stored = ParentReference {
            group: Some(GATEWAY_API_GROUP.into()),
            kind: Some("Gateway".into()),
            ..spec.clone()
        };
        assert!(same_parent(&spec, &stored));
    }
}
