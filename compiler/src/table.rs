//! The route table of each listener and the backends and credentials those tables use.

use std::collections::{BTreeSet, HashMap};

use agentgateway_crds::proxy_config::{
    Credentials, ListenerConfig, MatchConfig, NameValue, PathMatchConfig, ProxyConfig, RuleConfig,
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
    let mut attached_routes = Vec::with_capacity(listeners.len());
    let mut conflicts = Conflicts::default();
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
                    let origin = (&placed.route.object, rule.index, *match_index);
                    matches.push((match_key(&m, rank, rule.index, *match_index), m, origin));
                }
            }
        }
        matches.sort_by(|a, b| a.0.cmp(&b.0));
        conflicts.find(
            &listener.name,
            matches.iter().map(|(_, m, origin)| (m, *origin)),
        );
        config.listeners.push(ListenerConfig {
            name: listener.config_name.clone(),
            port: listener.port,
            rules,
            matches: matches.into_iter().map(|(_, m, _)| m).collect(),
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
        conflicts: conflicts.found,
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
