//! What each Gateway's one compile says about each route attached to it, for the route status
//! controller: the Gateway controller compiles a Gateway once per change and publishes each
//! attached route's diagnostics (conflicts with other routes included, which no single-route
//! compile could see) and how delivering the config went; routes whose view changed are woken.
//! The route controller derives status from these views only and never compiles.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use agentgateway_compiler::{Diagnostic, GatewayCompilation, ObjectRef};
use agentgateway_crds::gateway_api::{Gateway, HTTPRoute};
use kube::ResourceExt;
use kube::runtime::reflector;

use crate::cache::inputs::gateway_key;
use crate::cache::triggers::RefSender;

/// `(namespace, name)` of a route.
pub type RouteKey = (String, String);

/// How delivering a Gateway's config to its proxy went, as routes read it: `(delivered, reason)`.
/// A `Pending` Gateway counts as delivered (see `route_status`).
pub type Delivery = (bool, String);

/// What a route's status entry for one Gateway is derived from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteView {
    /// The route's `metadata.generation` the compile saw.
    pub generation: Option<i64>,
    /// The compile's diagnostics about the route itself.
    pub diagnostics: Vec<Diagnostic>,
    /// How delivery went; `None` until the Gateway's first programming attempt.
    pub delivery: Option<Delivery>,
}

#[derive(Default)]
struct GatewayViews {
    uid: String,
    routes: BTreeMap<RouteKey, (Option<i64>, Vec<Diagnostic>)>,
    delivery: Option<Delivery>,
}

/// The views of every Gateway, by `namespace/name`.
pub struct RouteViews {
    gateways: Mutex<HashMap<String, GatewayViews>>,
    wake: RefSender<HTTPRoute>,
}

impl RouteViews {
    /// Views that wake changed routes through `wake` (the route controller's queue).
    pub fn new(wake: RefSender<HTTPRoute>) -> Self {
        Self {
            gateways: Mutex::default(),
            wake,
        }
    }

    /// Records what compiling `gateway` (uid `uid`) said about its routes; wakes each route whose
    /// view changed, appeared or went away. Returns how many were woken.
    pub fn publish_compile(
        &self,
        gateway: &str,
        uid: &str,
        routes: BTreeMap<RouteKey, (Option<i64>, Vec<Diagnostic>)>,
    ) -> usize {
        let mut gateways = self.lock();
        let views = gateways.entry(gateway.to_string()).or_default();
        if views.uid != uid {
            *views = GatewayViews {
                uid: uid.to_string(),
                ..GatewayViews::default()
            };
        }
        let mut changed: Vec<RouteKey> = routes
            .iter()
            .filter(|(key, view)| views.routes.get(*key) != Some(view))
            .map(|(key, _)| key.clone())
            .collect();
        changed.extend(
            views
                .routes
                .keys()
                .filter(|key| !routes.contains_key(*key))
                .cloned(),
        );
        views.routes = routes;
        self.wake(&changed)
    }

    /// Records how delivering `gateway`'s config went; wakes all its routes when that changed.
    pub fn publish_delivery(&self, gateway: &str, uid: &str, delivery: Delivery) -> usize {
        let mut gateways = self.lock();
        let Some(views) = gateways.get_mut(gateway).filter(|v| v.uid == uid) else {
            return 0;
        };
        if views.delivery.as_ref() == Some(&delivery) {
            return 0;
        }
        views.delivery = Some(delivery);
        let routes: Vec<RouteKey> = views.routes.keys().cloned().collect();
        self.wake(&routes)
    }

    /// Forgets `gateway` (deleted, or no longer of our classes); wakes the routes it had.
    pub fn forget(&self, gateway: &str) -> usize {
        let removed = self.lock().remove(gateway);
        let routes: Vec<RouteKey> = removed
            .map(|v| v.routes.into_keys().collect())
            .unwrap_or_default();
        self.wake(&routes)
    }

    /// The view of `route` from `gateway` (uid `uid`): `None` until that Gateway's compile has
    /// seen the route.
    pub fn view(&self, gateway: &str, uid: &str, route: &RouteKey) -> Option<RouteView> {
        let gateways = self.lock();
        let views = gateways.get(gateway).filter(|v| v.uid == uid)?;
        let (generation, diagnostics) = views.routes.get(route)?;
        Some(RouteView {
            generation: *generation,
            diagnostics: diagnostics.clone(),
            delivery: views.delivery.clone(),
        })
    }

    fn wake(&self, routes: &[RouteKey]) -> usize {
        for (namespace, name) in routes {
            // Fails only when the route controller is gone (shutdown).
            let _ = self
                .wake
                .send(reflector::ObjectRef::new(name).within(namespace));
        }
        routes.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, GatewayViews>> {
        // A poisoned lock only means a reconcile panicked mid-update; the map is still usable.
        self.gateways.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Each route with a parentRef to `gateway` (`namespace/name`) among `routes`, with the
/// compile's diagnostics about it.
pub fn routes_of(
    gateway: &str,
    routes: &[HTTPRoute],
    compilation: &GatewayCompilation,
) -> BTreeMap<RouteKey, (Option<i64>, Vec<Diagnostic>)> {
    let mut by_object: HashMap<&ObjectRef, Vec<Diagnostic>> = HashMap::new();
    for diagnostic in &compilation.diagnostics {
        by_object
            .entry(&diagnostic.object)
            .or_default()
            .push(diagnostic.clone());
    }
    routes
        .iter()
        .filter(|route| {
            route
                .spec
                .parent_refs
                .iter()
                .any(|p| gateway_key(route, p).as_deref() == Some(gateway))
        })
        .map(|route| {
            let diagnostics = by_object
                .get(&ObjectRef::of(route))
                .cloned()
                .unwrap_or_default();
            (
                (route.namespace().unwrap_or_default(), route.name_any()),
                (route.metadata.generation, diagnostics),
            )
        })
        .collect()
}

/// The uid of `gateway`, as views are keyed by it (a Gateway recreated under the same name starts
/// afresh).
pub fn uid(gateway: &Gateway) -> &str {
    gateway.metadata.uid.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn key(name: &str) -> RouteKey {
        ("apps".into(), name.into())
    }

    fn views() -> (RouteViews, crate::cache::triggers::Queue<HTTPRoute>) {
        let queue = crate::cache::triggers::Queue::default();
        (RouteViews::new(queue.refs.clone()), queue)
    }

    #[tokio::test]
    async fn only_routes_whose_view_changed_are_woken() {
        let (views, queue) = views();
        let routes = BTreeMap::from([(key("a"), (Some(1), vec![])), (key("b"), (Some(1), vec![]))]);
        assert_eq!(views.publish_compile("infra/gw", "u1", routes.clone()), 2);
        assert_eq!(views.publish_compile("infra/gw", "u1", routes.clone()), 0);
        let mut next = routes.clone();
        next.insert(key("a"), (Some(2), vec![]));
        next.remove(&key("b"));
        assert_eq!(views.publish_compile("infra/gw", "u1", next), 2);
        let mut woken = std::pin::pin!(queue.stream());
        let mut names = Vec::new();
        for _ in 0..4 {
            names.push(woken.next().await.unwrap().name);
        }
        assert_eq!(names, ["a", "b", "a", "b"]);
    }

    #[test]
    fn a_view_needs_the_same_gateway_uid_and_carries_delivery() {
        let (views, _queue) = views();
        views.publish_compile(
            "infra/gw",
            "u1",
            BTreeMap::from([(key("a"), (Some(3), vec![]))]),
        );
        assert_eq!(
            views.view("infra/gw", "u1", &key("a")).unwrap().delivery,
            None
        );
        assert_eq!(
            views.publish_delivery("infra/gw", "u1", (true, "Programmed".into())),
            1
        );
        assert_eq!(
            views.publish_delivery("infra/gw", "u1", (true, "Programmed".into())),
            0
        );
        let view = views.view("infra/gw", "u1", &key("a")).unwrap();
        assert_eq!(view.generation, Some(3));
        assert_eq!(view.delivery, Some((true, "Programmed".into())));
        assert!(views.view("infra/gw", "u2", &key("a")).is_none());
        assert!(views.view("infra/gw", "u1", &key("b")).is_none());
        assert_eq!(views.forget("infra/gw"), 1);
        assert!(views.view("infra/gw", "u1", &key("a")).is_none());
    }
}
