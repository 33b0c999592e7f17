//! Gateway listeners the proxy can serve: HTTP, and HTTPS with a certificate; listeners of one
//! Gateway share a port when their protocol is the same and their host names differ.

use agentgateway_crds::proxy_config::{METRICS_PORT, READY_PORT};
use agentgateway_crds::validation::is_dns_subdomain;
use std::collections::{BTreeMap, BTreeSet};

use agentgateway_crds::gateway_api::{Gateway, Listener};

use crate::diagnostic::{Diagnostic, Reason};
use crate::index::Index;
use crate::inputs::ObjectRef;
use crate::tls::{ServedCertificate, listener_certificate};

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
    /// The certificate of an HTTPS listener; `None` for HTTP.
    pub(crate) certificate: Option<ServedCertificate>,
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
            certificate: None,
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

/// Who holds a port so far: its protocol, Gateway and the host names served on it.
struct PortHolder {
    /// `namespace/gateway/listener` of the first listener, or a proxy endpoint's description.
    first: String,
    /// The Gateway whose listeners may share the port (`None`: a proxy endpoint, never shared).
    gateway: Option<String>,
    protocol: String,
    /// Host names (lowercase; `None`: any host) of the listeners on the port.
    hostnames: BTreeSet<Option<String>>,
}

/// The servable listeners of `gateways` (in that order, each Gateway's in declaration order) and
/// the problems of the others. Listeners of one Gateway may share a port when they have the same
/// protocol and distinct host names (the usual HTTPS setup: one certificate per host name); the
/// config serves them as one port. Any other reuse of a port leaves the later listener out.
pub(crate) fn served_listeners(
    index: &Index<'_>,
    gateways: &[&Gateway],
) -> (Vec<ServedListener>, Vec<Diagnostic>) {
    let mut served = Vec::new();
    let mut diagnostics = Vec::new();
    // The proxy's own endpoints hold these ports in every pod.
    let endpoint = |first: &str| PortHolder {
        first: first.to_string(),
        gateway: None,
        protocol: String::new(),
        hostnames: BTreeSet::new(),
    };
    let mut ports: BTreeMap<u16, PortHolder> = BTreeMap::from([
        (READY_PORT, endpoint("the proxy's readiness endpoint")),
        (METRICS_PORT, endpoint("the proxy's metrics endpoint")),
    ]);
    for gateway in gateways {
        let object = ObjectRef::of(*gateway);
        let mut names = BTreeSet::new();
        for (i, listener) in gateway.spec.listeners.iter().enumerate() {
            let field = format!("spec.listeners[{i}]");
            let config_name = format!("{}/{}", object.key(), listener.name);
            let problem = |path: &str, reason, message: String| {
                Diagnostic::new(&object, format!("{field}{path}"), reason, message)
            };
            if !names.insert(listener.name.as_str()) {
                let message = format!("duplicate listener name {:?}", listener.name);
                diagnostics.push(problem(".name", Reason::InvalidSpec, message));
                continue;
            }
            let certificate = match check_listener(index, gateway, &object, &field, listener) {
                Ok(certificate) => certificate,
                Err(diagnostic) => {
                    diagnostics.push(diagnostic);
                    continue;
                }
            };
            let Some(port) = u16::try_from(listener.port).ok().filter(|p| *p != 0) else {
                let message = format!(
                    "listener {}: port {} must be between 1 and 65535",
                    listener.name, listener.port
                );
                diagnostics.push(problem(".port", Reason::PortUnavailable, message));
                continue;
            };
            let hostname = listener.hostname.as_ref().map(|h| h.to_ascii_lowercase());
            if let Some(name) = &hostname
                && !is_dns_subdomain(name.strip_prefix("*.").unwrap_or(name))
            {
                let message = format!(
                    "listener {}: hostname {name:?} must be a host name or *.suffix",
                    listener.name
                );
                diagnostics.push(problem(".hostname", Reason::InvalidSpec, message));
                continue;
            }
            if let Some(holder) = ports.get(&port)
                && let Some((path, reason, message)) =
                    port_conflict(holder, &object, &config_name, listener, &hostname, port)
            {
                diagnostics.push(problem(path, reason, message));
                continue;
            }
            ports
                .entry(port)
                .or_insert_with(|| PortHolder {
                    first: config_name.clone(),
                    gateway: Some(object.key()),
                    protocol: listener.protocol.clone(),
                    hostnames: BTreeSet::new(),
                })
                .hostnames
                .insert(hostname.clone());
            served.push(ServedListener {
                gateway: Some(object.clone()),
                name: listener.name.clone(),
                config_name,
                port: Some(port),
                hostname,
                allows_all_namespaces: allows_all_namespaces(listener),
                certificate,
            });
        }
    }
    (served, diagnostics)
}

/// Why `listener` cannot join the listeners `holder` already serves on `port`, if it cannot: another
/// Gateway or a proxy endpoint holds the port, the protocol differs, or the host name is taken.
fn port_conflict(
    holder: &PortHolder,
    gateway: &ObjectRef,
    config_name: &str,
    listener: &Listener,
    hostname: &Option<String>,
    port: u16,
) -> Option<(&'static str, Reason, String)> {
    if holder.gateway.as_deref() != Some(gateway.key().as_str()) {
        let message = format!(
            "port {port} of listener {config_name} is already used by {}: only listeners of one Gateway share a port",
            holder.first
        );
        return Some((".port", Reason::PortUnavailable, message));
    }
    if holder.protocol != listener.protocol {
        let message = format!(
            "listener {}: port {port} already serves {} (listener {}); listeners sharing a port must have the same protocol",
            listener.name, holder.protocol, holder.first
        );
        return Some((".protocol", Reason::ProtocolConflict, message));
    }
    if holder.hostnames.contains(hostname) {
        let shown = hostname.as_deref().unwrap_or("(any host)");
        let message = format!(
            "listener {}: port {port} already serves host name {shown} (listener {}); listeners sharing a port must have distinct host names",
            listener.name, holder.first
        );
        return Some((".hostname", Reason::HostnameConflict, message));
    }
    None
}

/// `HTTP` listeners are served as they are, `HTTPS` ones with their certificate (see [`crate::tls`]);
/// other protocols (`TLS` passthrough, `TCP`, `UDP`) are not served.
fn check_listener(
    index: &Index<'_>,
    spec: &Gateway,
    gateway: &ObjectRef,
    field: &str,
    listener: &Listener,
) -> Result<Option<ServedCertificate>, Diagnostic> {
    match listener.protocol.as_str() {
        "HTTPS"
            if spec
                .spec
                .tls
                .as_ref()
                .is_some_and(|tls| tls.frontend.is_some()) =>
        {
            let message = format!(
                "listener {}: the Gateway's spec.tls.frontend asks for client certificate validation, which agentgateway does not do; the HTTPS listener is not served rather than served without it",
                listener.name
            );
            Err(Diagnostic::new(
                gateway,
                format!("{field}.tls"),
                Reason::UnsupportedValue,
                message,
            ))
        }
        "HTTP" if listener.tls.is_some() => {
            let message = format!(
                "listener {}: tls is only for HTTPS listeners; the listener is not served",
                listener.name
            );
            Err(Diagnostic::new(
                gateway,
                format!("{field}.tls"),
                Reason::InvalidSpec,
                message,
            ))
        }
        "HTTP" => Ok(None),
        "HTTPS" => listener_certificate(index, gateway, field, listener).map(Some),
        other => {
            let message = format!(
                "listener {}: protocol {other} is not supported by this version of the proxy (only HTTP and HTTPS); the listener is not served",
                listener.name
            );
            Err(Diagnostic::new(
                gateway,
                format!("{field}.protocol"),
                Reason::UnsupportedProtocol,
                message,
            ))
        }
    }
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
