//! The status of a Gateway, as a pure function of its compilation and of how programming its
//! proxy went: `Accepted`, `Programmed`, and per listener the attached routes, supported kinds and
//! `Accepted`/`Programmed`/`ResolvedRefs`.

use std::collections::BTreeSet;

use agentgateway_compiler::{GatewayCompilation, ObjectRef, Reason};
use agentgateway_crds::GATEWAY_API_GROUP;
use agentgateway_crds::conditions::{reasons, types};
use agentgateway_crds::gateway_api::{Gateway, GatewayStatus, ListenerStatus, RouteGroupKind};
use k8s_openapi::jiff::Timestamp;

use crate::conditions::{self, Desired};
use crate::route_views::Delivery;

/// The status of one listener, before times are assigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredListener {
    /// The listener's name.
    pub name: String,
    /// Routes attached to it.
    pub attached_routes: i32,
    /// `Accepted`, `Programmed`, `ResolvedRefs`.
    pub conditions: Vec<Desired>,
}

/// The status of a Gateway, before times are assigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredStatus {
    /// `Accepted`, `Programmed`.
    pub conditions: Vec<Desired>,
    /// One per listener, in spec order.
    pub listeners: Vec<DesiredListener>,
}

/// The route kinds every listener supports.
pub fn supported_kinds() -> Vec<RouteGroupKind> {
    vec![RouteGroupKind {
        group: Some(GATEWAY_API_GROUP.to_string()),
        kind: "HTTPRoute".to_string(),
    }]
}

/// How far programming a Gateway's proxy got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Programming {
    /// Every ready proxy replica serves the config generation the operator last wrote.
    Serving {
        /// That generation.
        generation: String,
    },
    /// The objects are written; the proxy does not serve them yet (the message says why).
    Pending(String),
    /// The proxy's objects could not be written: `reason` is the error's label
    /// (`ResourceConflict`, `ConfigTooLarge`, `ApplyFailed`, ...), the message names the object
    /// and the API server's answer.
    Failed {
        /// CamelCase reason.
        reason: &'static str,
        /// For a human.
        message: String,
    },
}

impl Programming {
    /// How the routes of the Gateway read this: `Pending` counts as delivered (see
    /// `route_status`), and both read the same, so that a change passing through `Pending` wakes
    /// no route.
    pub fn delivery(&self) -> Delivery {
        match self {
            Self::Serving { .. } | Self::Pending(_) => (true, reasons::PROGRAMMED.to_string()),
            Self::Failed { reason, .. } => (false, reason.to_string()),
        }
    }

    /// The condition's status, reason and message.
    fn parts(&self) -> (bool, &str, String) {
        match self {
            Self::Serving { generation } => (
                true,
                reasons::PROGRAMMED,
                format!("the proxy serves config generation {generation}"),
            ),
            Self::Pending(message) => (false, reasons::PENDING, message.clone()),
            Self::Failed { reason, message } => (false, reason, message.clone()),
        }
    }
}

/// The status `gateway` should have, given how programming its proxy went and what is wrong
/// with its parameters, if anything (`Accepted=False` `InvalidParameters` with that message).
pub fn desired(
    gateway: &Gateway,
    compilation: &GatewayCompilation,
    programming: &Programming,
    invalid_parameters: Option<&str>,
) -> DesiredStatus {
    let generation = gateway.metadata.generation;
    let object = ObjectRef::of(gateway);
    let (available, programmed_reason, programmed_message) = programming.parts();
    let mut names = BTreeSet::new();
    let mut listeners = Vec::new();
    for (i, listener) in gateway.spec.listeners.iter().enumerate() {
        // Status listeners are keyed by name; a duplicate (refused by the compiler) has no entry.
        if !names.insert(listener.name.as_str()) {
            continue;
        }
        let prefix = format!("spec.listeners[{i}]");
        let problem = compilation.diagnostics.iter().find(|d| {
            d.object == object
                && d.field
                    .strip_prefix(&prefix)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        });
        let conditions = listener_conditions(
            problem.map(|d| (d.reason, d.message.as_str())),
            generation,
            (available, programmed_reason, &programmed_message),
        );
        let attached = compilation
            .attached_routes
            .get(&listener.name)
            .copied()
            .unwrap_or(0);
        listeners.push(DesiredListener {
            name: listener.name.clone(),
            attached_routes: i32::try_from(attached).unwrap_or(i32::MAX),
            conditions,
        });
    }
    let accepted = match invalid_parameters {
        None => Desired::new(
            types::ACCEPTED,
            true,
            reasons::ACCEPTED,
            "accepted by agentgateway",
            generation,
        ),
        Some(message) => Desired::new(
            types::ACCEPTED,
            false,
            reasons::INVALID_PARAMETERS,
            format!("{message}; the proxy's Deployment and Service are kept as they were"),
            generation,
        ),
    };
    DesiredStatus {
        conditions: vec![
            accepted,
            Desired::new(
                types::PROGRAMMED,
                available,
                programmed_reason,
                programmed_message.clone(),
                generation,
            ),
        ],
        listeners,
    }
}

/// `Accepted`, `Programmed`, `ResolvedRefs` and `Conflicted` of a listener with `problem` (the
/// compiler's reason and message, `None`: served). A certificate that does not resolve leaves the
/// spec accepted and fails `ResolvedRefs`; a port shared with an incompatible listener is
/// `Conflicted`; either way the listener is not served, so not `Programmed`.
fn listener_conditions(
    problem: Option<(Reason, &str)>,
    generation: Option<i64>,
    (available, programmed_reason, programmed_message): (bool, &str, &str),
) -> Vec<Desired> {
    let condition = |type_, status, reason: &str, message: &str| {
        Desired::new(type_, status, reason, message.to_string(), generation)
    };
    let resolved = || {
        condition(
            types::RESOLVED_REFS,
            true,
            reasons::RESOLVED_REFS,
            "every reference resolves",
        )
    };
    let no_conflict = || {
        condition(
            types::CONFLICTED,
            false,
            reasons::NO_CONFLICTS,
            "no conflicting listener",
        )
    };
    let Some((reason, message)) = problem else {
        return vec![
            condition(
                types::ACCEPTED,
                true,
                reasons::ACCEPTED,
                "the listener is served",
            ),
            condition(
                types::PROGRAMMED,
                available,
                programmed_reason,
                programmed_message,
            ),
            resolved(),
            no_conflict(),
        ];
    };
    let not_served = "the listener is not served";
    let (accepted, resolved, conflicted) = match reason {
        Reason::InvalidCertificateRef | Reason::RefNotPermitted => (
            condition(
                types::ACCEPTED,
                true,
                reasons::ACCEPTED,
                "the listener's spec is valid; it is served once its certificate resolves",
            ),
            condition(types::RESOLVED_REFS, false, reason.as_str(), message),
            no_conflict(),
        ),
        Reason::ProtocolConflict | Reason::HostnameConflict => (
            condition(types::ACCEPTED, false, reason.as_str(), message),
            resolved(),
            condition(types::CONFLICTED, true, reason.as_str(), message),
        ),
        _ => (
            condition(types::ACCEPTED, false, reason.as_str(), message),
            resolved(),
            no_conflict(),
        ),
    };
    let programmed = condition(types::PROGRAMMED, false, reasons::INVALID, not_served);
    vec![accepted, programmed, resolved, conflicted]
}

/// Whether the stored status already says what `desired` says (times aside).
pub fn up_to_date(existing: Option<&GatewayStatus>, desired: &DesiredStatus) -> bool {
    let Some(existing) = existing else {
        return false;
    };
    if !conditions::up_to_date(&existing.conditions, &desired.conditions) {
        return false;
    }
    let existing_names: BTreeSet<&str> =
        existing.listeners.iter().map(|l| l.name.as_str()).collect();
    let desired_names: BTreeSet<&str> = desired.listeners.iter().map(|l| l.name.as_str()).collect();
    existing_names == desired_names
        && desired.listeners.iter().all(|want| {
            existing.listeners.iter().any(|have| {
                have.name == want.name
                    && have.attached_routes == want.attached_routes
                    && have.supported_kinds == supported_kinds()
                    && conditions::up_to_date(&have.conditions, &want.conditions)
            })
        })
}

/// The status to apply: `desired` with each condition's `lastTransitionTime` kept from the stored
/// status unless it flipped.
pub fn merge(
    existing: Option<&GatewayStatus>,
    desired: &DesiredStatus,
    now: Timestamp,
) -> GatewayStatus {
    let stored_conditions = existing
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let listeners = desired
        .listeners
        .iter()
        .map(|want| {
            let stored = existing
                .and_then(|s| s.listeners.iter().find(|l| l.name == want.name))
                .map(|l| l.conditions.as_slice())
                .unwrap_or_default();
            ListenerStatus {
                name: want.name.clone(),
                attached_routes: want.attached_routes,
                supported_kinds: supported_kinds(),
                conditions: conditions::merge(stored, &want.conditions, now),
            }
        })
        .collect();
    GatewayStatus {
        conditions: conditions::merge(stored_conditions, &desired.conditions, now),
        listeners,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgateway_compiler::{Inputs, compile_gateway};

    fn gateway() -> Gateway {
        serde_yaml::from_str(
            "
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra, generation: 5, uid: u}
spec:
  gatewayClassName: agentgateway
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - {name: https, port: 443, protocol: TLS}
",
        )
        .unwrap()
    }

    fn route() -> agentgateway_crds::gateway_api::HTTPRoute {
        serde_yaml::from_str(
            "
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: missing}]}]
",
        )
        .unwrap()
    }

    fn compiled() -> GatewayCompilation {
        let inputs = Inputs {
            routes: vec![route()],
            ..Inputs::default()
        };
        compile_gateway(&gateway(), &inputs)
    }

    fn serving() -> Programming {
        Programming::Serving {
            generation: "0123456789abcdef".into(),
        }
    }

    fn pending() -> Programming {
        Programming::Pending("waiting".into())
    }

    fn condition<'a>(conditions: &'a [Desired], type_: &str) -> &'a Desired {
        conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn listeners_report_attached_routes_and_supported_kinds() {
        let status = desired(&gateway(), &compiled(), &serving(), None);
        let http = &status.listeners[0];
        assert_eq!((http.name.as_str(), http.attached_routes), ("http", 1));
        assert!(condition(&http.conditions, "Accepted").status);
        assert!(condition(&http.conditions, "Programmed").status);
        assert!(condition(&http.conditions, "ResolvedRefs").status);
        let merged = merge(None, &status, Timestamp::UNIX_EPOCH);
        assert_eq!(merged.listeners[0].supported_kinds, supported_kinds());
        assert_eq!(
            merged.listeners[0].supported_kinds[0].group.as_deref(),
            Some("gateway.networking.k8s.io")
        );
    }

    #[test]
    fn an_unsupported_listener_is_not_accepted_with_the_compilers_reason() {
        let status = desired(&gateway(), &compiled(), &serving(), None);
        let https = &status.listeners[1];
        let accepted = condition(&https.conditions, "Accepted");
        assert!(!accepted.status);
        assert_eq!(accepted.reason, "UnsupportedProtocol");
        assert!(!condition(&https.conditions, "Programmed").status);
        assert_eq!(https.attached_routes, 0);
    }

    #[test]
    fn certificate_problems_fail_resolved_refs_and_conflicts_are_conflicted() {
        let gateway: Gateway = serde_yaml::from_str(
            "
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra, generation: 2, uid: u}
spec:
  gatewayClassName: agentgateway
  listeners:
  - {name: missing, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: nope}]}}
  - {name: foreign, port: 443, protocol: HTTPS, hostname: b.example.com, tls: {certificateRefs: [{name: c, namespace: certs}]}}
  - {name: http, port: 80, protocol: HTTP}
  - {name: clash, port: 80, protocol: HTTPS, tls: {certificateRefs: [{name: nope}]}}
  - {name: again, port: 80, protocol: HTTP}
",
        )
        .unwrap();
        let compilation = compile_gateway(&gateway, &Inputs::default());
        let status = desired(&gateway, &compilation, &serving(), None);
        let check = |listener: usize, type_: &str| {
            let c = condition(&status.listeners[listener].conditions, type_);
            (c.status, c.reason.clone())
        };
        assert_eq!(
            check(0, "ResolvedRefs"),
            (false, "InvalidCertificateRef".into())
        );
        let message = &condition(&status.listeners[0].conditions, "ResolvedRefs").message;
        assert!(message.contains("Secret infra/nope not found"), "{message}");
        assert_eq!(check(0, "Accepted"), (true, "Accepted".into()));
        assert_eq!(check(0, "Programmed"), (false, "Invalid".into()));
        assert_eq!(check(1, "ResolvedRefs"), (false, "RefNotPermitted".into()));
        assert_eq!(check(1, "Programmed"), (false, "Invalid".into()));
        assert_eq!(check(2, "Programmed"), (true, "Programmed".into()));
        assert_eq!(check(2, "Conflicted"), (false, "NoConflicts".into()));
        // The HTTPS listener on the HTTP port fails on its certificate first; a second HTTP
        // listener for any host on port 80 conflicts on the host name.
        assert_eq!(
            check(3, "ResolvedRefs"),
            (false, "InvalidCertificateRef".into())
        );
        assert_eq!(check(4, "Conflicted"), (true, "HostnameConflict".into()));
        assert_eq!(check(4, "Accepted"), (false, "HostnameConflict".into()));
        assert_eq!(check(4, "Programmed"), (false, "Invalid".into()));
    }

    #[test]
    fn programmed_waits_for_an_available_replica() {
        let pending = desired(&gateway(), &compiled(), &pending(), None);
        let programmed = condition(&pending.conditions, "Programmed");
        assert!(!programmed.status);
        assert_eq!(programmed.reason, "Pending");
        assert!(condition(&pending.conditions, "Accepted").status);
        assert_eq!(programmed.observed_generation, Some(5));
        let ready = desired(&gateway(), &compiled(), &serving(), None);
        assert!(condition(&ready.conditions, "Programmed").status);
    }

    #[test]
    fn a_failure_to_program_is_the_programmed_condition_with_its_reason() {
        let failed = Programming::Failed {
            reason: "ResourceConflict",
            message: "RoleBinding infra/gw already exists".into(),
        };
        let status = desired(&gateway(), &compiled(), &failed, None);
        let programmed = condition(&status.conditions, "Programmed");
        assert!(!programmed.status);
        assert_eq!(programmed.reason, "ResourceConflict");
        assert_eq!(programmed.message, "RoleBinding infra/gw already exists");
        assert!(condition(&status.conditions, "Accepted").status);
        let listener = condition(&status.listeners[0].conditions, "Programmed");
        assert_eq!(listener.reason, "ResourceConflict");
    }

    #[test]
    fn a_written_status_is_up_to_date_until_something_changes() {
        let status = desired(&gateway(), &compiled(), &pending(), None);
        let stored = merge(None, &status, Timestamp::UNIX_EPOCH);
        assert!(up_to_date(Some(&stored), &status));
        assert!(!up_to_date(None, &status));
        let ready = desired(&gateway(), &compiled(), &serving(), None);
        assert!(!up_to_date(Some(&stored), &ready));
        let later = merge(Some(&stored), &ready, Timestamp::MAX);
        // Accepted did not flip and keeps its time; Programmed flipped.
        assert_eq!(
            later.conditions[0].last_transition_time,
            stored.conditions[0].last_transition_time
        );
        assert_ne!(
            later.conditions[1].last_transition_time,
            stored.conditions[1].last_transition_time
        );
    }

    #[test]
    fn invalid_parameters_are_not_accepted_with_gateway_apis_reason_and_the_message() {
        let message = "spec.infrastructure.parametersRef: AgentgatewayParameters infra/p not found";
        let status = desired(&gateway(), &compiled(), &serving(), Some(message));
        let accepted = condition(&status.conditions, "Accepted");
        assert!(!accepted.status);
        assert_eq!(accepted.reason, "InvalidParameters");
        assert!(
            accepted.message.starts_with(message),
            "{}",
            accepted.message
        );
        assert_eq!(accepted.observed_generation, Some(5));
    }

    #[test]
    fn a_removed_listener_is_a_change() {
        let status = desired(&gateway(), &compiled(), &serving(), None);
        let mut stored = merge(None, &status, Timestamp::UNIX_EPOCH);
        stored.listeners.push(ListenerStatus {
            name: "gone".into(),
            ..stored.listeners[0].clone()
        });
        assert!(!up_to_date(Some(&stored), &status));
    }
}
