//! Which listeners a route attaches to, through its `parentRefs`, `allowedRoutes` and hostnames.

use std::collections::BTreeSet;

use agentgateway_crds::GATEWAY_API_GROUP;
use agentgateway_crds::gateway_api::{HTTPRoute, ParentReference};

use crate::diagnostic::{Diagnostic, Reason};
use crate::hostname::effective_hostnames;
use crate::inputs::ObjectRef;
use crate::listener::ServedListener;

/// Which parents are being compiled.
pub(crate) enum Parents {
    /// Standalone mode with Gateways: every parentRef must name one of these (`namespace/name`), and
    /// every failure is reported.
    AllOf(BTreeSet<String>),
    /// Operator mode: only parentRefs to this Gateway (`namespace/name`) count; the others belong to
    /// other Gateways or other controllers.
    One(String),
}

/// A route on one listener, with the hostnames it serves there.
#[derive(Clone, Debug)]
pub(crate) struct Attachment {
    /// Index into the served listeners.
    pub(crate) listener: usize,
    /// The effective hostnames; empty matches any host.
    pub(crate) hostnames: Vec<String>,
}

/// Where a route attaches and why it does not elsewhere.
pub(crate) struct Attached {
    /// Whether some parentRef names a parent being compiled (the route is ours to report on).
    pub(crate) considered: bool,
    /// At most one per listener.
    pub(crate) attachments: Vec<Attachment>,
    /// Parent references that do not attach.
    pub(crate) diagnostics: Vec<Diagnostic>,
}

/// Attaches `route` to `listeners` through its parentRefs.
pub(crate) fn attach(
    route: &HTTPRoute,
    listeners: &[ServedListener],
    parents: &Parents,
) -> Attached {
    let object = ObjectRef::of(route);
    let mut result = Attached {
        considered: false,
        attachments: Vec::new(),
        diagnostics: Vec::new(),
    };
    if route.spec.parent_refs.is_empty() {
        if let Parents::AllOf(_) = parents {
            result.considered = true;
            let message = "the route has no parentRefs: with Gateways in the inputs, routes attach to their listeners through parentRefs";
            result.diagnostics.push(Diagnostic::new(
                &object,
                "spec.parentRefs",
                Reason::NoMatchingParent,
                message,
            ));
        }
        return result;
    }
    for (i, parent) in route.spec.parent_refs.iter().enumerate() {
        let field = format!("spec.parentRefs[{i}]");
        let problem = |reason, message: String| Diagnostic::new(&object, &field, reason, message);
        let group = parent.group.as_deref().unwrap_or(GATEWAY_API_GROUP);
        let kind = parent.kind.as_deref().unwrap_or("Gateway");
        let is_gateway = group == GATEWAY_API_GROUP && kind == "Gateway";
        let gateway = format!(
            "{}/{}",
            parent.namespace.as_deref().unwrap_or(&object.namespace),
            parent.name
        );
        match parents {
            Parents::One(ours) if !is_gateway || gateway != *ours => continue,
            Parents::AllOf(_) if !is_gateway => {
                result.considered = true;
                let message = format!(
                    "parent kind {kind} (group {group}) is not supported: expected a Gateway"
                );
                result
                    .diagnostics
                    .push(problem(Reason::InvalidKind, message));
                continue;
            }
            Parents::AllOf(gateways) if !gateways.contains(&gateway) => {
                result.considered = true;
                result.diagnostics.push(problem(
                    Reason::NoMatchingParent,
                    format!("Gateway {gateway} not found"),
                ));
                continue;
            }
            _ => result.considered = true,
        }
        match attach_to_gateway(&object, &gateway, parent, listeners, &route.spec.hostnames) {
            Ok(attachments) => {
                for attachment in attachments {
                    if !result
                        .attachments
                        .iter()
                        .any(|a| a.listener == attachment.listener)
                    {
                        result.attachments.push(attachment);
                    }
                }
            }
            Err((reason, message)) => result.diagnostics.push(problem(reason, message)),
        }
    }
    result
}

/// The listeners of `gateway` that one parentRef selects and that accept the route.
fn attach_to_gateway(
    route: &ObjectRef,
    gateway: &str,
    parent: &ParentReference,
    listeners: &[ServedListener],
    route_hostnames: &[String],
) -> Result<Vec<Attachment>, (Reason, String)> {
    let selected: Vec<(usize, &ServedListener)> = listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| l.gateway.as_ref().is_some_and(|g| g.key() == gateway))
        .filter(|(_, l)| parent.section_name.as_ref().is_none_or(|s| *s == l.name))
        .filter(|(_, l)| {
            parent
                .port
                .is_none_or(|p| l.port.is_some_and(|lp| i32::from(lp) == p))
        })
        .collect();
    if selected.is_empty() {
        let mut which = String::from("Gateway ");
        which.push_str(gateway);
        which.push_str(" has no served listener");
        if let Some(section) = &parent.section_name {
            which.push_str(&format!(" named {section:?}"));
        }
        if let Some(port) = parent.port {
            which.push_str(&format!(" on port {port}"));
        }
        return Err((Reason::NoMatchingParent, which));
    }
    let allowed: Vec<_> = selected
        .into_iter()
        .filter(|(_, l)| l.allows_namespace(&route.namespace))
        .collect();
    if allowed.is_empty() {
        let message = format!(
            "the listeners of Gateway {gateway} do not allow routes from namespace {} (allowedRoutes.namespaces.from)",
            route.namespace
        );
        return Err((Reason::NotAllowedByListeners, message));
    }
    let attachments: Vec<Attachment> = allowed
        .into_iter()
        .filter_map(|(listener, l)| {
            effective_hostnames(l.hostname.as_deref(), route_hostnames).map(|hostnames| {
                Attachment {
                    listener,
                    hostnames,
                }
            })
        })
        .collect();
    if attachments.is_empty() {
        let message = format!(
            "no hostname of the route intersects the hostnames of the listeners of Gateway {gateway}"
        );
        return Err((Reason::NoMatchingListenerHostname, message));
    }
    Ok(attachments)
}
