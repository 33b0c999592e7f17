//! The route table of each listener and the backends and credentials those tables use.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use agentgateway_crds::proxy_config::{
    Credentials, ListenerConfig, ListenerTlsConfig, MatchConfig, NameValue, PathMatchConfig,
    ProxyConfig, RuleConfig, TlsCertificateConfig,
};

use crate::attach::Attachment;
use crate::backend::BackendTable;
use crate::diagnostic::{Diagnostic, Reason};
use crate::inputs::ObjectRef;
use crate::listener::ServedListener;
use crate::precedence::{RouteOrder, match_key};
use crate::route::{CompiledRoute, to_u32};

/// A compiled route, its precedence order and where it attaches.
pub(crate) struct PlacedRoute {
    pub(crate) route: CompiledRoute,
    pub(crate) order: RouteOrder,
    pub(crate) attachments: Vec<Attachment>,
}

/// The assembled config, its credentials, the number of routes attached to each listener and the
/// matches that lose to an identical match of another route.
pub(crate) struct Table {
    pub(crate) config: ProxyConfig,
    pub(crate) credentials: Credentials,
    pub(crate) attached_routes: Vec<u32>,
    pub(crate) conflicts: Vec<Diagnostic>,
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
    let mut attached_routes = vec![0u32; listeners.len()];
    let mut conflicts = Conflicts::default();
    let mut credentials = Credentials::new();
    for group in port_groups(listeners) {
        let first = &listeners[group[0]];
        let mut rules = Vec::new();
        let mut matches = Vec::new();
        let mut certificates = Vec::new();
        for &l in &group {
            let listener = &listeners[l];
            // On a shared port, the most specific listener host name is looked at first, as
            // Gateway API picks the listener before the route.
            let specificity = hostname_specificity(listener.hostname.as_deref());
            for (rank, placed) in ranked.iter().enumerate() {
                let Some(attachment) = placed.attachments.iter().find(|a| a.listener == l) else {
                    continue;
                };
                attached_routes[l] += 1;
                // A rule whose matches were all invalid matches nothing; leaving it out keeps its
                // backends out of the config too.
                for rule in placed.route.rules.iter().filter(|r| !r.matches.is_empty()) {
                    let rule_position = to_u32(rules.len());
                    let mut config = RuleConfig {
                        route: placed.route.object.key(),
                        rule: rule.index,
                        backends: rule.backends.clone(),
                        ..RuleConfig::default()
                    };
                    rule.filters.apply_to(&mut config);
                    rules.push(config);
                    for (match_index, m) in &rule.matches {
                        let mut m = m.clone();
                        m.rule = rule_position;
                        m.hostnames = attachment.hostnames.clone();
                        let origin = (&placed.route.object, rule.index, *match_index);
                        let key = match_key(&m, rank, rule.index, *match_index);
                        matches.push(((specificity, key), m, origin));
                    }
                }
            }
            if let Some(certificate) = &listener.certificate {
                certificates.push(TlsCertificateConfig {
                    hostname: listener.hostname.clone(),
                    credential: certificate.credential.clone(),
                });
                credentials.insert(certificate.credential.clone(), certificate.pem.0.clone());
            }
        }
        matches.sort_by(|a, b| a.0.cmp(&b.0));
        conflicts.find(
            &first.name,
            matches.iter().map(|(_, m, origin)| (m, *origin)),
        );
        config.listeners.push(ListenerConfig {
            // The first listener on the port names it, so adding a later one keeps the port bound.
            name: first.config_name.clone(),
            port: first.port,
            rules,
            matches: matches.into_iter().map(|(_, m, _)| m).collect(),
            tls: (!certificates.is_empty()).then_some(ListenerTlsConfig { certificates }),
        });
    }

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
        conflicts: conflicts.found,
    }
}

/// The listeners by port, in order of each port's first listener; each group in declaration order.
/// The compiler only lets listeners share a port when they can (see `served_listeners`); the
/// portless default listener is a group of its own.
fn port_groups(listeners: &[ServedListener]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_port: HashMap<u16, usize> = HashMap::new();
    for (l, listener) in listeners.iter().enumerate() {
        match listener
            .port
            .map(|port| by_port.get(&port).copied().ok_or(port))
        {
            Some(Ok(group)) => groups[group].push(l),
            Some(Err(port)) => {
                by_port.insert(port, groups.len());
                groups.push(vec![l]);
            }
            None => groups.push(vec![l]),
        }
    }
    groups
}

/// Exact host names first, then wildcards (longer suffixes first), then listeners for any host.
fn hostname_specificity(hostname: Option<&str>) -> (u8, Reverse<usize>) {
    match hostname {
        Some(name) if name.starts_with("*.") => (1, Reverse(name.len())),
        Some(_) => (0, Reverse(0)),
        None => (2, Reverse(0)),
    }
}

/// What makes two matches select the same requests (the header and query lists as sets).
type Criteria<'a> = (
    &'a PathMatchConfig,
    Option<&'a str>,
    Vec<&'a NameValue>,
    Vec<&'a NameValue>,
    Vec<&'a str>,
);

fn criteria(m: &MatchConfig) -> Criteria<'_> {
    let mut headers: Vec<&NameValue> = m.headers.iter().collect();
    headers.sort_by(|a, b| (&a.name, &a.value).cmp(&(&b.name, &b.value)));
    let mut query: Vec<&NameValue> = m.query_params.iter().collect();
    query.sort_by(|a, b| (&a.name, &a.value).cmp(&(&b.name, &b.value)));
    let mut hostnames: Vec<&str> = m.hostnames.iter().map(String::as_str).collect();
    hostnames.sort_unstable();
    (&m.path, m.method.as_deref(), headers, query, hostnames)
}

/// Matches of one route that an identical match of another route shadows, one diagnostic per
/// match (however many listeners it loses on).
#[derive(Default)]
struct Conflicts {
    found: Vec<Diagnostic>,
    seen: BTreeSet<(ObjectRef, String)>,
}

impl Conflicts {
    /// Looks through one listener's `matches`, in precedence order, each with its route, rule
    /// and match index. Identical matches within one route are not a conflict: the first rule
    /// wins, as the route's author wrote it.
    fn find<'a>(
        &mut self,
        listener: &str,
        matches: impl Iterator<Item = (&'a MatchConfig, (&'a ObjectRef, u32, u32))>,
    ) {
        let mut winners: HashMap<Criteria<'a>, &'a ObjectRef> = HashMap::new();
        for (m, (route, rule, match_index)) in matches {
            let winner = *winners.entry(criteria(m)).or_insert(route);
            if winner == route {
                continue;
            }
            let field = format!("spec.rules[{rule}].matches[{match_index}]");
            if self.seen.insert((route.clone(), field.clone())) {
                self.found.push(Diagnostic::new(
                    route,
                    field,
                    Reason::RuleMatchConflict,
                    format!(
                        "identical to a match of HTTPRoute {} on listener {listener}, which takes precedence (older, or first by namespace/name): this match receives no traffic",
                        winner.key()
                    ),
                ));
            }
        }
    }
}
