//! Gateway listeners the proxy can serve: HTTP only, one listener per port.

use agentgateway_crds::proxy_config::{METRICS_PORT, READY_PORT};
use std::collections::{BTreeMap, BTreeSet};

use agentgateway_crds::gateway_api::{Gateway, Listener};

use crate::diagnostic::{Diagnostic, Reason};
use crate::inputs::ObjectRef;

/// The name of the one listener of standalone mode without Gateways.
pub const DEFAULT_LISTENER: &str = "default";

/// A listener that will be in the config.
#[derive(Clone, Debug)]
pub(crate) struct ServedListener {
    /// The Gateway; `None` for the default listener.
    pub(crate) gateway: Option<ObjectRef>,
    /// The listener's name within its Gateway (what `sectionName` selects).
    pub(crate) name: String,
    /// `namespace/gateway/listener`, or `default`.
    pub(crate) config_name: String,
    /// The port; `None` for the default listener, which uses the proxy's `--listen` address.
    pub(crate) port: Option<u16>,
    /// The host name the listener serves (lowercase), if restricted.
    pub(crate) hostname: Option<String>,
    /// `allowedRoutes.namespaces.from` is `All` or `Selector` rather than `Same`.
    pub(crate) allows_all_namespaces: bool,
}

impl ServedListener {
    /// The listener of standalone mode without Gateways: every route, any host, `--listen` port.
    pub(crate) fn default_listener() -> Self {
        Self {
            gateway: None,
            name: DEFAULT_LISTENER.to_string(),
            config_name: DEFAULT_LISTENER.to_string(),
            port: None,
            hostname: None,
            allows_all_namespaces: true,
        }
    }

    /// Whether routes of `namespace` may attach.
    pub(crate) fn allows_namespace(&self, namespace: &str) -> bool {
        self.allows_all_namespaces
            || self
                .gateway
                .as_ref()
                .is_none_or(|gateway| gateway.namespace == namespace)
    }
}

/// The servable listeners of `gateways` (in that order, each Gateway's in declaration order) and
/// the problems of the others. A listener whose port an earlier one already uses is left out: the
/// proxy binds each port once.
pub(crate) fn served_listeners(gateways: &[&Gateway]) -> (Vec<ServedListener>, Vec<Diagnostic>) {
    let mut served = Vec::new();
    let mut diagnostics = Vec::new();
    // The proxy's own endpoints hold these ports in every pod.
    let mut ports: BTreeMap<u16, String> = BTreeMap::from([
        (READY_PORT, "the proxy's readiness endpoint".to_string()),
        (METRICS_PORT, "the proxy's metrics endpoint".to_string()),
    ]);
    for gateway in gateways {
        let object = ObjectRef::of(*gateway);
        let mut names = BTreeSet::new();
        for (i, listener) in gateway.spec.listeners.iter().enumerate() {
            let field = format!("spec.listeners[{i}]");
            let config_name = format!("{}/{}", object.key(), listener.name);
            if !names.insert(listener.name.as_str()) {
                let message = format!("duplicate listener name {:?}", listener.name);
                diagnostics.push(Diagnostic::new(
                    &object,
                    format!("{field}.name"),
                    Reason::InvalidSpec,
                    message,
                ));
                continue;
            }
            if let Err(problem) = check_listener(&object, &field, listener) {
                diagnostics.push(problem);
                continue;
            }
            let Some(port) = u16::try_from(listener.port).ok().filter(|p| *p != 0) else {
                let message = format!(
                    "listener {}: port {} must be between 1 and 65535",
                    listener.name, listener.port
                );
                diagnostics.push(Diagnostic::new(
                    &object,
                    format!("{field}.port"),
                    Reason::PortUnavailable,
                    message,
                ));
                continue;
            };
            if let Some(first) = ports.get(&port) {
                let message = format!(
                    "port {port} of listener {config_name} is already used by {first}: a port is served by one listener"
                );
                diagnostics.push(Diagnostic::new(
                    &object,
                    format!("{field}.port"),
                    Reason::PortUnavailable,
                    message,
                ));
                continue;
            }
            ports.insert(port, config_name.clone());
            served.push(ServedListener {
                gateway: Some(object.clone()),
                name: listener.name.clone(),
                config_name,
                port: Some(port),
                hostname: listener.hostname.as_ref().map(|h| h.to_ascii_lowercase()),
                allows_all_namespaces: allows_all_namespaces(listener),
            });
        }
    }
    (served, diagnostics)
}

/// Only plain HTTP is served today; HTTPS and TLS listeners need certificates the proxy cannot use yet.
fn check_listener(gateway: &ObjectRef, field: &str, listener: &Listener) -> Result<(), Diagnostic> {
    if listener.protocol == "HTTP" {
        return Ok(());
    }
    let message = format!(
        "listener {}: protocol {} is not supported by this version of the proxy (only HTTP); the listener is not served",
        listener.name, listener.protocol
    );
    Err(Diagnostic::new(
        gateway,
        format!("{field}.protocol"),
        Reason::UnsupportedProtocol,
        message,
    ))
}

/// `Selector` is treated as `All`: label selectors need the Namespace objects, which the compiler
/// does not read. Unknown values fall back to the default, `Same`, the safe choice.
fn allows_all_namespaces(listener: &Listener) -> bool {
    let from = listener
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    matches!(
        from.and_then(|n| n.from.as_deref()),
        Some("All" | "Selector")
    )
}
