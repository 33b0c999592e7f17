//! The two entry points: standalone mode (the proxy's own files, every problem fatal) and operator
//! mode (one Gateway, problems reported and left out).

use std::collections::{BTreeMap, BTreeSet};

use agentgateway_crds::gateway_api::{Gateway, HTTPRoute};
use agentgateway_crds::proxy_config::{Credentials, ProxyConfig};

use crate::attach::{Attached, Attachment, Parents, attach};
use crate::backend::BackendTable;
use crate::diagnostic::{CompileError, Diagnostic};
use crate::governance::Attachments;
use crate::hostname::effective_hostnames;
use crate::index::Index;
use crate::inputs::{Inputs, key_of};
use crate::listener::{ServedListener, served_listeners};
use crate::precedence::RouteOrder;
use crate::route::compile_route;
use crate::table::{PlacedRoute, assemble};

/// A proxy's configuration and the keys it refers to by id.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Compiled {
    /// The config (never holds a key).
    pub config: ProxyConfig,
    /// The keys its providers use, by credential id.
    pub credentials: Credentials,
}

/// The compilation of one Gateway in operator mode.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct GatewayCompilation {
    /// The config of the Gateway's proxy, without the objects that have problems.
    pub compiled: Compiled,
    /// Every problem of the Gateway, of the routes that refer to it and of the backends those
    /// routes name; the operator turns them into status conditions.
    pub diagnostics: Vec<Diagnostic>,
    /// Routes attached to each listener of the Gateway, by the listener's own name (`http`, as in
    /// `status.listeners[].name`); every listener is present, unserved ones with 0.
    pub attached_routes: BTreeMap<String, u32>,
}

/// Standalone mode: every Gateway in the inputs contributes its listeners (routes attach by
/// parentRefs); with no Gateway, one listener named `default` with no port serves every route
/// (parentRefs ignored). Any diagnostic is an error, backends no route uses included.
pub fn compile_standalone(inputs: &Inputs) -> Result<Compiled, CompileError> {
    let index = Index::new(inputs);
    let mut backends = BackendTable::new(&index);
    backends.compile_all();
    let mut diagnostics = Vec::new();

    let mut gateways: Vec<&Gateway> = inputs.gateways.iter().collect();
    gateways.sort_by_key(|g| key_of(&g.metadata));
    let (listeners, parents) = if gateways.is_empty() {
        (vec![ServedListener::default_listener()], None)
    } else {
        let (listeners, mut problems) = served_listeners(&index, &gateways);
        diagnostics.append(&mut problems);
        let keys = gateways.iter().map(|g| key_of(&g.metadata)).collect();
        (listeners, Some(Parents::AllOf(keys)))
    };

    let mut placed = Vec::new();
    for (order, route) in ordered_routes(inputs) {
        let attached = match &parents {
            Some(parents) => attach(route, &listeners, parents),
            None => attach_to_default_listener(route),
        };
        placed.push(place(
            &index,
            &mut backends,
            &mut diagnostics,
            order,
            route,
            attached,
        ));
    }
    diagnostics.extend(backends.diagnostics(|_| true));
    let policies = Attachments::new(inputs);
    diagnostics.extend(policies.diagnostics().cloned());
    if !diagnostics.is_empty() {
        return Err(CompileError::new(diagnostics, &inputs.origins));
    }
    // Shadowed matches are not errors here: Gateway API's precedence says which one wins, and
    // the operator reports them on the losing route's status.
    let mut table = assemble(&listeners, &placed, &backends);
    policies.apply(&listeners, &mut table.config, &mut table.credentials);
    Ok(Compiled {
        config: table.config,
        credentials: table.credentials,
    })
}

/// Operator mode: the config of one Gateway and every diagnostic; invalid objects are left out
/// (an unresolved backendRef stays as a weight without backend), never fatal.
pub fn compile_gateway(gateway: &Gateway, inputs: &Inputs) -> GatewayCompilation {
    let index = Index::new(inputs);
    let mut backends = BackendTable::new(&index);
    let (listeners, mut diagnostics) = served_listeners(&index, &[gateway]);
    let parents = Parents::One(key_of(&gateway.metadata));

    let mut placed = Vec::new();
    let mut named_backends = BTreeSet::new();
    for (order, route) in ordered_routes(inputs) {
        let attached = attach(route, &listeners, &parents);
        if !attached.considered {
            continue;
        }
        let route = place(
            &index,
            &mut backends,
            &mut diagnostics,
            order,
            route,
            attached,
        );
        named_backends.extend(route.route.named_backends.iter().cloned());
        placed.push(route);
    }
    diagnostics.extend(backends.diagnostics(|key| named_backends.contains(key)));

    let mut table = assemble(&listeners, &placed, &backends);
    diagnostics.append(&mut table.conflicts);
    // Policies report on their own status (`policy_reports`), not on the Gateway's objects.
    Attachments::new(inputs).apply(&listeners, &mut table.config, &mut table.credentials);
    let attached_routes = gateway
        .spec
        .listeners
        .iter()
        .map(|listener| {
            let served = listeners.iter().position(|l| l.name == listener.name);
            let count = served
                .and_then(|i| table.attached_routes.get(i).copied())
                .unwrap_or(0);
            (listener.name.clone(), count)
        })
        .collect();
    GatewayCompilation {
        compiled: Compiled {
            config: table.config,
            credentials: table.credentials,
        },
        diagnostics,
        attached_routes,
    }
}

/// The routes in precedence order, so diagnostics come out in a stable order too.
fn ordered_routes(inputs: &Inputs) -> Vec<(RouteOrder, &HTTPRoute)> {
    let mut routes: Vec<_> = inputs
        .routes
        .iter()
        .enumerate()
        .map(|(position, route)| (RouteOrder::of(route, position), route))
        .collect();
    routes.sort_by(|a, b| a.0.cmp(&b.0));
    routes
}

/// Without Gateways every route is on the default listener, with its own hostnames.
fn attach_to_default_listener(route: &HTTPRoute) -> Attached {
    let hostnames = effective_hostnames(None, &route.spec.hostnames).unwrap_or_default();
    Attached {
        considered: true,
        attachments: vec![Attachment {
            listener: 0,
            hostnames,
        }],
        diagnostics: Vec::new(),
    }
}

/// Compiles an attached route's rules and collects the problems of both steps.
fn place(
    index: &Index<'_>,
    backends: &mut BackendTable<'_>,
    diagnostics: &mut Vec<Diagnostic>,
    order: RouteOrder,
    route: &HTTPRoute,
    attached: Attached,
) -> PlacedRoute {
    let mut compiled = compile_route(index, backends, route);
    diagnostics.extend(attached.diagnostics);
    diagnostics.append(&mut compiled.diagnostics);
    PlacedRoute {
        route: compiled,
        order,
        attachments: attached.attachments,
    }
}
