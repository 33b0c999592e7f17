//! The ports of a proxy: one per served Gateway listener, named after the listener within the
//! limits of a container port name (an IANA service name: at most 15 characters of `a-z0-9-`).

use std::collections::BTreeSet;

use agentgateway_crds::proxy_config::ProxyConfig;

use super::workload::{METRICS_PORT, READY_PORT};

/// A listener's port as the Deployment and the Service expose it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerPort {
    /// The port name (also the Service port name).
    pub name: String,
    /// The port number, the same in the container and the Service.
    pub port: i32,
    /// The Service port's `appProtocol`: `https` where the proxy terminates TLS, else `http`.
    pub app_protocol: &'static str,
}

/// The ports of the listeners the compiled config serves, in listener order. The compiler has
/// already left out listeners it cannot serve (other protocols, a port used twice); the admin
/// ports are left out too, as the proxy binds them itself.
pub fn listener_ports(config: &ProxyConfig) -> Vec<ListenerPort> {
    let mut taken: BTreeSet<String> = ["ready", "metrics"].map(String::from).into();
    let mut seen_ports = BTreeSet::new();
    let mut ports = Vec::new();
    for listener in &config.listeners {
        let Some(port) = listener.port.map(i32::from) else {
            continue;
        };
        if port == READY_PORT || port == METRICS_PORT || !seen_ports.insert(port) {
            continue;
        }
        // Config listener names are `namespace/gateway/listener`.
        let listener_name = listener.name.rsplit('/').next().unwrap_or_default();
        let (name, app_protocol) = if listener.tls.is_some() {
            // Tools that read the protocol from the port name (`<protocol>[-<suffix>]`, as
            // service meshes do) see HTTPS too.
            let name = if listener_name.starts_with("https") {
                listener_name.to_string()
            } else {
                format!("https-{listener_name}")
            };
            (port_name(&name, port, &taken), "https")
        } else {
            (port_name(listener_name, port, &taken), "http")
        };
        taken.insert(name.clone());
        ports.push(ListenerPort {
            name,
            port,
            app_protocol,
        });
    }
    ports
}

/// A valid, unused port name for `listener` on `port`: the listener's name lowercased, other
/// characters turned into `-`, cut to 15 characters; `port-<n>` when that leaves no letter or
/// collides.
pub fn port_name(listener: &str, port: i32, taken: &BTreeSet<String>) -> String {
    let mut name = String::with_capacity(15);
    for c in listener.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        // No leading hyphen and no two in a row: both are invalid in service names.
        if c == '-' && (name.is_empty() || name.ends_with('-')) {
            continue;
        }
        name.push(c);
        if name.len() == 15 {
            break;
        }
    }
    while name.ends_with('-') {
        name.pop();
    }
    let has_letter = name.chars().any(|c| c.is_ascii_lowercase());
    if name.is_empty() || !has_letter || taken.contains(&name) {
        return format!("port-{port}");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgateway_crds::proxy_config::ListenerConfig;

    fn config(listeners: &[(&str, u16)]) -> ProxyConfig {
        ProxyConfig {
            listeners: listeners
                .iter()
                .map(|(name, port)| ListenerConfig {
                    name: format!("ns/gw/{name}"),
                    port: Some(*port),
                    ..ListenerConfig::default()
                })
                .collect(),
            ..ProxyConfig::default()
        }
    }

    #[test]
    fn listener_names_become_port_names() {
        let ports = listener_ports(&config(&[("http", 80), ("tenant", 8080)]));
        assert_eq!(
            ports,
            [
                ListenerPort {
                    name: "http".into(),
                    port: 80,
                    app_protocol: "http",
                },
                ListenerPort {
                    name: "tenant".into(),
                    port: 8080,
                    app_protocol: "http",
                }
            ]
        );
    }

    #[test]
    fn names_are_sanitized_to_fifteen_valid_characters() {
        let none = BTreeSet::new();
        assert_eq!(
            port_name("My_Very.Long--Listener", 80, &none),
            "my-very-long-li"
        );
        assert_eq!(port_name("-a-", 80, &none), "a");
        assert_eq!(port_name("listener-number-", 80, &none), "listener-number");
        assert_eq!(port_name("12345", 8080, &none), "port-8080");
        assert_eq!(port_name("___", 81, &none), "port-81");
    }

    #[test]
    fn colliding_and_reserved_names_fall_back_to_the_port() {
        let ports = listener_ports(&config(&[
            ("ready", 81),
            ("listener-one-aaaa", 82),
            ("listener-one-aaab", 83),
        ]));
        let names: Vec<_> = ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["port-81", "listener-one-aa", "port-83"]);
    }

    #[test]
    fn an_https_port_shared_by_listeners_appears_once_named_and_marked_https() {
        use agentgateway_crds::proxy_config::{ListenerTlsConfig, TlsCertificateConfig};
        let mut config = config(&[("http", 80), ("web", 443), ("https-api", 8443)]);
        for listener in &mut config.listeners[1..] {
            listener.tls = Some(ListenerTlsConfig {
                certificates: vec![TlsCertificateConfig {
                    hostname: None,
                    credential: "tls_ns_c".into(),
                }],
            });
        }
        let ports = listener_ports(&config);
        let shown: Vec<_> = ports
            .iter()
            .map(|p| (p.name.as_str(), p.port, p.app_protocol))
            .collect();
        assert_eq!(
            shown,
            [
                ("http", 80, "http"),
                ("https-web", 443, "https"),
                ("https-api", 8443, "https")
            ]
        );
    }

    #[test]
    fn admin_ports_are_not_listener_ports() {
        let ports = listener_ports(&config(&[("a", 15021), ("b", 15020), ("c", 80)]));
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].port, 80);
    }
}
