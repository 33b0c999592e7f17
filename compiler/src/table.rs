//! The route table of each listener and the backends and credentials those tables use.

use agentgateway_crds::proxy_config::{Credentials, ListenerConfig, ProxyConfig, RuleConfig};

use crate::attach::Attachment;
use crate::backend::BackendTable;
use crate::listener::ServedListener;
use crate::precedence::{RouteOrder, match_key};
use crate::route::{CompiledRoute, to_u32};

/// A compiled route, its precedence order and where it attaches.
pub(crate) struct PlacedRoute {
    pub(crate) route: CompiledRoute,
    pub(crate) order: RouteOrder,
    pub(crate) attachments: Vec<Attachment>,
}

/// The assembled config, its credentials and the number of routes attached to each listener.
pub(crate) struct Table {
    pub(crate) config: ProxyConfig,
    pub(crate) credentials: Credentials,
    pub(crate) attached_routes: Vec<u32>,
}

/// Builds every listener's rules and precedence-sorted matches, then keeps only the backends (and
/// their credentials) that some emitted rule uses: a proxy gets only the keys its routes use.
pub(crate) fn assemble(
    listeners: &[ServedListener],
    routes: &[PlacedRoute],
    backends: &BackendTable<'_>,
) -> Table {
    let mut ranked: Vec<&PlacedRoute> = routes.iter().collect();
    ranked.sort_by(|a, b| a.order.cmp(&b.order));

    let mut config = ProxyConfig::default();
    let mut attached_routes = Vec::with_capacity(listeners.len());
    for (l, listener) in listeners.iter().enumerate() {
        let mut rules = Vec::new();
        let mut matches = Vec::new();
        let mut attached = 0u32;
        for (rank, placed) in ranked.iter().enumerate() {
            let Some(attachment) = placed.attachments.iter().find(|a| a.listener == l) else {
                continue;
            };
            attached += 1;
            // A rule whose matches were all invalid matches nothing; leaving it out keeps its
            // backends out of the config too.
            for rule in placed.route.rules.iter().filter(|r| !r.matches.is_empty()) {
                let rule_position = to_u32(rules.len());
                rules.push(RuleConfig {
                    route: placed.route.object.key(),
                    rule: rule.index,
                    backends: rule.backends.clone(),
                });
                for (match_index, m) in &rule.matches {
                    let mut m = m.clone();
                    m.rule = rule_position;
                    m.hostnames = attachment.hostnames.clone();
                    matches.push((match_key(&m, rank, rule.index, *match_index), m));
                }
            }
        }
        matches.sort_by(|a, b| a.0.cmp(&b.0));
        config.listeners.push(ListenerConfig {
            name: listener.config_name.clone(),
            port: listener.port,
            rules,
            matches: matches.into_iter().map(|(_, m)| m).collect(),
        });
        attached_routes.push(attached);
    }

    let mut credentials = Credentials::new();
    let used = config
        .listeners
        .iter()
        .flat_map(|l| &l.rules)
        .flat_map(|r| &r.backends);
    let used: Vec<String> = used.filter_map(|w| w.backend.clone()).collect();
    for key in used {
        if let Some(compiled) = backends.accepted(&key) {
            credentials.extend(compiled.credentials.clone());
            config.backends.insert(key, compiled.config.clone());
        }
    }
    Table {
        config,
        credentials,
        attached_routes,
    }
}
