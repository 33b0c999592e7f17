//! Gateway API precedence of HTTPRoute matches across all routes of a listener. The proxy tries
//! matches in order and the first that holds wins, so this order is the routing behaviour.

use std::cmp::Reverse;

use agentgateway_crds::gateway_api::HTTPRoute;
use agentgateway_crds::proxy_config::{MatchConfig, PathMatchConfig};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::inputs::key_of;

/// The order of routes for ties between their matches: oldest first, then `namespace/name`.
///
/// Objects without `creationTimestamp` (read from files) count as older than any timestamped one and
/// keep their input order among themselves. Timestamped objects with equal timestamps go by
/// `namespace/name`, not input order: the operator's inputs come in no meaningful order, and its
/// output must not change when that order does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RouteOrder {
    created: Option<Time>,
    input_position: Option<usize>,
    key: String,
}

impl RouteOrder {
    /// The order of `route`, found at `position` in the inputs.
    pub(crate) fn of(route: &HTTPRoute, position: usize) -> Self {
        let created = route.metadata.creation_timestamp.clone();
        let input_position = created.is_none().then_some(position);
        Self {
            created,
            input_position,
            key: key_of(&route.metadata),
        }
    }
}

/// The sort key of one match. `route_rank` is the route's position in [`RouteOrder`] order.
///
/// Gateway API order: Exact path before PathPrefix; longer path first; a method before none; more
/// headers first; more query parameters first. Then, before the route tiebreaks, a match restricted
/// to hostnames before one matching any host: routes are only ever restricted by hostname to serve
/// those hosts, and Gateway API gives the most specific hostname precedence over catch-all routes.
/// Then the oldest route, its name, and finally the rule and match order within the route.
pub(crate) fn match_key(
    m: &MatchConfig,
    route_rank: usize,
    rule: u32,
    match_index: u32,
) -> impl Ord + use<> {
    let (exact, path) = match &m.path {
        PathMatchConfig::Exact(path) => (0u8, path),
        PathMatchConfig::PathPrefix(path) => (1u8, path),
    };
    (
        exact,
        Reverse(path.chars().count()),
        m.method.is_none(),
        Reverse(m.headers.len()),
        Reverse(m.query_params.len()),
        m.hostnames.is_empty(),
        route_rank,
        rule,
        match_index,
    )
}
