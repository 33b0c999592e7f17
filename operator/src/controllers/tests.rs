//! Reconciler tests against a mock API server: each test fills the caches, runs one reconcile
//! and answers the exact API calls it makes, in order, failing on any call it did not expect.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentgateway_crds::gateway_api::{Gateway, GatewayClass, HTTPRoute};
use agentgateway_crds::{AgentgatewayBackend, AgentgatewayParameters, AgentgatewayPolicy};
use futures_util::StreamExt;
use http::{Request, Response};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::client::Body;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::Event;
use kube::{Client, Resource};
use serde_json::{Value, json};
use tower_test::mock;

use super::{backend, gateway, policy, route};
use crate::cache::triggers::Triggers;
use crate::cache::{Scope, Stores};
use crate::context::Context;
use crate::metrics::Metrics;
use crate::resources::ProxySettings;
use crate::route_views::{self, RouteViews};

type Handle = mock::Handle<Request<Body>, Response<Body>>;

/// The caches' writers a test fills.
#[derive(Default)]
struct Objects {
    classes: Vec<GatewayClass>,
    gateways: Vec<Gateway>,
    routes: Vec<HTTPRoute>,
    backends: Vec<AgentgatewayBackend>,
    policies: Vec<AgentgatewayPolicy>,
    secrets: Vec<PartialObjectMeta<Secret>>,
    config_maps: Vec<PartialObjectMeta<ConfigMap>>,
    service_accounts: Vec<ServiceAccount>,
    /// Whether the operator was given a Redis URL.
    redis: bool,
    parameters: Vec<AgentgatewayParameters>,
    /// The autoscaler and budget versions the "cluster" serves.
    scaling: crate::resources::ScalingApis,
}

struct Harness {
    ctx: Arc<Context>,
    api: Handle,
    triggers: Triggers,
}

fn fill<K>(mut writer: Writer<K>, objects: Vec<K>)
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    writer.apply_watcher_event(&Event::Init);
    for object in objects {
        writer.apply_watcher_event(&Event::InitApply(object));
    }
    writer.apply_watcher_event(&Event::InitDone);
}

fn empty<K: Resource<DynamicType = ()> + Clone + 'static>() -> reflector::Store<K> {
    let (store, writer) = reflector::store();
    fill(writer, Vec::new());
    store
}

fn harness(objects: Objects) -> Harness {
    let (service, api) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let triggers = Triggers::default();
    let (gateway_classes, w) = reflector::store();
    fill(w, objects.classes);
    let (gateways, w) = reflector::store();
    fill(w, objects.gateways);
    let (routes, w) = reflector::store();
    fill(w, objects.routes);
    let (backends, w) = reflector::store();
    fill(w, objects.backends);
    let (policies, w) = reflector::store();
    fill(w, objects.policies);
    let (secrets, w) = reflector::store();
    fill(w, objects.secrets);
    let (parameters, w) = reflector::store();
    fill(w, objects.parameters);
    let (config_maps, w) = reflector::store();
    fill(w, objects.config_maps);
    let (service_accounts, w) = reflector::store();
    fill(w, objects.service_accounts);
    let stores = Stores {
        gateway_classes,
        gateways,
        routes,
        backends,
        policies,
        parameters,
        secrets,
        config_maps,
        referenced: Arc::default(),
        reference_grants: None,
        deployments: empty(),
        services: empty(),
        service_accounts,
        roles: empty(),
        role_bindings: empty(),
        pods: empty(),
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "agentgateway-operator".into(),
            instance: Some("test".into()),
        },
    );
    let ctx = Context {
        client,
        stores,
        scope: Scope::Cluster,
        route_views: Arc::new(RouteViews::new(triggers.routes.refs.clone())),
        recorder,
        metrics: Metrics::registry().1,
        proxy: ProxySettings {
            redis: objects.redis.then(|| crate::redis::RedisSettings {
                url: "redis://redis.infra:6379".into(),
                timeout: "5ms".into(),
                password: None,
            }),
            ..ProxySettings::default()
        },
        redis_password: None,
        backoff: Mutex::default(),
        recent_status: Mutex::default(),
        last_compiled: Mutex::default(),
        scaling: objects.scaling,
        absent: Mutex::default(),
    };
    Harness {
        ctx: Arc::new(ctx),
        api,
        triggers,
    }
}

/// Answers the next call, which must be `method` on `path` (query aside), with `answer`; returns
/// the call's query and JSON body.
async fn expect(api: &mut Handle, method: &str, path: &str, answer: Value) -> (String, Value) {
    expect_status(api, method, path, 200, answer).await
}

/// [`expect`] with the answer's HTTP `status`.
async fn expect_status(
    api: &mut Handle,
    method: &str,
    path: &str,
    status: u16,
    answer: Value,
) -> (String, Value) {
    let next = tokio::time::timeout(Duration::from_secs(5), api.next_request()).await;
    let (request, respond) = next
        .unwrap_or_else(|_| panic!("no call; expected {method} {path}"))
        .expect("the client is gone");
    assert_eq!(
        (request.method().as_str(), request.uri().path()),
        (method, path),
        "unexpected call"
    );
    let query = request.uri().query().unwrap_or_default().to_string();
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    let response = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&answer).unwrap()))
        .unwrap();
    respond.send_response(response);
    (query, body)
}

/// Answers the next call, which must be `method` on `path`, with its own body (as the API server
/// answers a server-side apply that creates the object); returns the body.
async fn expect_echo(api: &mut Handle, method: &str, path: &str) -> Value {
    let next = tokio::time::timeout(Duration::from_secs(5), api.next_request()).await;
    let (request, respond) = next
        .unwrap_or_else(|_| panic!("no call; expected {method} {path}"))
        .expect("the client is gone");
    assert_eq!(
        (request.method().as_str(), request.uri().path()),
        (method, path),
        "unexpected call"
    );
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let response = Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(bytes.clone()))
        .unwrap();
    respond.send_response(response);
    serde_json::from_slice(&bytes).unwrap()
}

/// Fails if the reconcile makes any further call.
async fn expect_no_call(api: &mut Handle) {
    let next = tokio::time::timeout(Duration::from_millis(200), api.next_request()).await;
    if let Ok(Some((request, _))) = next {
        panic!("unexpected call {} {}", request.method(), request.uri());
    }
}

fn yaml<K: serde::de::DeserializeOwned>(text: &str) -> K {
    serde_yaml::from_str(text).unwrap()
}

fn class() -> GatewayClass {
    yaml(
        "
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: agentgateway}
spec: {controllerName: agentgateway.dev/agentgateway}
",
    )
}

fn gateway_of(class: &str) -> Gateway {
    yaml(&format!(
        "
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: infra, uid: u1, generation: 2, resourceVersion: '10'}}
spec:
  gatewayClassName: {class}
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
"
    ))
}

fn http_route() -> HTTPRoute {
    yaml(
        "
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: infra, generation: 4, resourceVersion: '41'}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: llm}]}]
",
    )
}

fn llm_backend() -> AgentgatewayBackend {
    yaml(
        "
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: llm, namespace: infra, generation: 3, resourceVersion: '7'}
spec:
  ai:
    provider: {host: llm.infra, port: 8000, openai: {}}
",
    )
}

fn controlled_by(uid: &str) -> Value {
    json!([{
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "name": "gw", "uid": uid, "controller": true,
    }])
}

fn types(conditions: &Value) -> Vec<(String, String, String)> {
    conditions
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (text("type"), text("status"), text("reason"))
        })
        .collect()
}

#[tokio::test]
async fn a_valid_backend_gets_accepted_by_one_server_side_apply_and_no_second_write() {
    let backend = llm_backend();
    let Harness { ctx, mut api, .. } = harness(Objects {
        backends: vec![backend.clone()],
        ..Objects::default()
    });
    let task = tokio::spawn(backend::reconcile(
        Arc::new(backend.clone()),
        Arc::clone(&ctx),
    ));
    let (query, body) = expect(
        &mut api,
        "PATCH",
        "/apis/agentgateway.dev/v1alpha1/namespaces/infra/agentgatewaybackends/llm/status",
        serde_json::to_value(&backend).unwrap(),
    )
    .await;
    assert!(query.contains("fieldManager=agentgateway-operator") && query.contains("force=true"));
    assert_eq!(body["kind"], "AgentgatewayBackend");
    assert_eq!(
        types(&body["status"]["conditions"]),
        [("Accepted".into(), "True".into(), "Accepted".into())]
    );
    assert_eq!(body["status"]["conditions"][0]["observedGeneration"], 3);
    assert!(body["metadata"].get("resourceVersion").is_none());
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());

    // The cache does not show the write yet: the same reconcile writes nothing again.
    let task = tokio::spawn(backend::reconcile(Arc::new(backend), Arc::clone(&ctx)));
    expect_no_call(&mut api).await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_route_waits_for_its_gateways_compile_then_writes_from_it_with_a_precondition() {
    let route = http_route();
    let Harness {
        ctx,
        mut api,
        triggers,
    } = harness(Objects {
        classes: vec![class()],
        gateways: vec![gateway_of("agentgateway")],
        routes: vec![route.clone()],
        backends: vec![llm_backend()],
        ..Objects::default()
    });
    // Before the Gateway compiled this generation of the route: no call at all.
    let task = tokio::spawn(route::reconcile(Arc::new(route.clone()), Arc::clone(&ctx)));
    expect_no_call(&mut api).await;
    task.await.unwrap().unwrap();

    let key = ("infra".to_string(), "r".to_string());
    let woken = ctx.route_views.publish_compile(
        "infra/gw",
        "u1",
        [(key.clone(), (Some(4), Vec::new()))].into(),
    );
    assert_eq!(woken, 1);
    ctx.route_views
        .publish_delivery("infra/gw", "u1", (true, "Programmed".into()));
    let mut queue = std::pin::pin!(triggers.routes.stream());
    assert_eq!(queue.next().await.unwrap().name, "r");

    let task = tokio::spawn(route::reconcile(Arc::new(route.clone()), Arc::clone(&ctx)));
    let (_, body) = expect(
        &mut api,
        "PATCH",
        "/apis/gateway.networking.k8s.io/v1/namespaces/infra/httproutes/r/status",
        serde_json::to_value(&route).unwrap(),
    )
    .await;
    // status.parents is one list shared with other controllers: written only over the version
    // it was computed from.
    assert_eq!(body["metadata"]["resourceVersion"], "41");
    let parent = &body["status"]["parents"][0];
    assert_eq!(parent["controllerName"], "agentgateway.dev/agentgateway");
    assert_eq!(
        types(&parent["conditions"]),
        [
            ("Accepted".into(), "True".into(), "Accepted".into()),
            ("ResolvedRefs".into(), "True".into(), "ResolvedRefs".into()),
            ("Conflicted".into(), "False".into(), "NoConflicts".into()),
            ("Programmed".into(), "True".into(), "Programmed".into()),
        ]
    );
    task.await.unwrap().unwrap();

    // A newer generation of the route than the Gateway compiled waits again.
    let mut newer = route;
    newer.metadata.generation = Some(5);
    newer.metadata.resource_version = Some("42".into());
    let task = tokio::spawn(route::reconcile(Arc::new(newer), Arc::clone(&ctx)));
    expect_no_call(&mut api).await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_foreign_object_is_never_written_and_the_gateway_says_resource_conflict() {
    let gateway = gateway_of("agentgateway");
    let mut foreign: ServiceAccount = yaml("metadata: {name: gw, namespace: infra}");
    foreign.metadata.owner_references = serde_json::from_value(controlled_by("other")).unwrap();
    let Harness { ctx, mut api, .. } = harness(Objects {
        classes: vec![class()],
        gateways: vec![gateway.clone()],
        service_accounts: vec![foreign],
        ..Objects::default()
    });
    let task = tokio::spawn(gateway::reconcile(
        Arc::new(gateway.clone()),
        Arc::clone(&ctx),
    ));
    let (_, event) = expect(
        &mut api,
        "POST",
        "/apis/events.k8s.io/v1/namespaces/infra/events",
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": null}),
    )
    .await;
    assert_eq!(
        (&event["type"], &event["reason"]),
        (&json!("Warning"), &json!("ResourceConflict"))
    );
    let (_, body) = expect(
        &mut api,
        "PATCH",
        "/apis/gateway.networking.k8s.io/v1/namespaces/infra/gateways/gw/status",
        serde_json::to_value(&gateway).unwrap(),
    )
    .await;
    let conditions = types(&body["status"]["conditions"]);
    assert_eq!(
        conditions[1],
        (
            "Programmed".into(),
            "False".into(),
            "ResourceConflict".into()
        )
    );
    let message = body["status"]["conditions"][1]["message"].as_str().unwrap();
    assert!(message.contains("ServiceAccount infra/gw"), "{message}");
    let result = task.await.unwrap();
    assert!(result.is_err(), "the conflict is the reconcile's error");
    expect_no_call(&mut api).await;
}

#[tokio::test]
async fn a_gateway_leaving_our_class_deletes_only_what_it_controls_and_wakes_its_routes() {
    let gateway = gateway_of("someone-else");
    let mut own: PartialObjectMeta<ConfigMap> =
        yaml("metadata: {name: gw-config, namespace: infra}");
    own.metadata.owner_references = serde_json::from_value(controlled_by("u1")).unwrap();
    let mut foreign: ServiceAccount = yaml("metadata: {name: gw, namespace: infra}");
    foreign.metadata.owner_references = serde_json::from_value(controlled_by("other")).unwrap();
    let Harness {
        ctx,
        mut api,
        triggers,
    } = harness(Objects {
        gateways: vec![gateway.clone()],
        config_maps: vec![own],
        service_accounts: vec![foreign],
        ..Objects::default()
    });
    let key = ("infra".to_string(), "r".to_string());
    ctx.route_views.publish_compile(
        "infra/gw",
        route_views::uid(&gateway),
        [(key, (Some(4), Vec::new()))].into(),
    );
    let mut queue = std::pin::pin!(triggers.routes.stream());
    assert_eq!(queue.next().await.unwrap().name, "r");

    let task = tokio::spawn(gateway::reconcile(Arc::new(gateway), Arc::clone(&ctx)));
    expect(
        &mut api,
        "DELETE",
        "/api/v1/namespaces/infra/configmaps/gw-config",
        json!({"apiVersion": "v1", "kind": "Status", "status": "Success"}),
    )
    .await;
    // The autoscaler and budget (no cache holds them) are looked up by name.
    for path in [
        "/apis/autoscaling/v2/namespaces/infra/horizontalpodautoscalers/gw",
        "/apis/policy/v1/namespaces/infra/poddisruptionbudgets/gw",
    ] {
        expect_status(&mut api, "GET", path, 404, not_found()).await;
    }
    let (_, event) = expect(
        &mut api,
        "POST",
        "/apis/events.k8s.io/v1/namespaces/infra/events",
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": null}),
    )
    .await;
    assert_eq!(event["reason"], "Released");
    task.await.unwrap().unwrap();
    expect_no_call(&mut api).await;
    // Its route is woken to drop its entry for this Gateway.
    assert_eq!(queue.next().await.unwrap().name, "r");
}

fn limits_policy() -> AgentgatewayPolicy {
    yaml(
        "
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayPolicy
metadata: {name: limits, namespace: infra, generation: 2, resourceVersion: '50'}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]
  rateLimit:
    local: [{requests: 10, per: Minute, key: route}]
    global: [{requests: 100, per: Minute, key: consumer}]
",
    )
}

const POLICY_STATUS: &str =
    "/apis/agentgateway.dev/v1alpha1/namespaces/infra/agentgatewaypolicies/limits/status";

#[tokio::test]
async fn a_policy_on_an_existing_route_is_accepted_on_it_with_redis_and_its_status_not_rewritten() {
    let policy = limits_policy();
    let Harness { ctx, mut api, .. } = harness(Objects {
        classes: vec![class()],
        gateways: vec![gateway_of("agentgateway")],
        routes: vec![http_route()],
        backends: vec![llm_backend()],
        policies: vec![policy.clone()],
        redis: true,
        ..Objects::default()
    });
    let task = tokio::spawn(policy::reconcile(
        Arc::new(policy.clone()),
        Arc::clone(&ctx),
    ));
    let (query, body) = expect(
        &mut api,
        "PATCH",
        POLICY_STATUS,
        serde_json::to_value(&policy).unwrap(),
    )
    .await;
    assert!(query.contains("fieldManager=agentgateway-operator"));
    assert_eq!(body["kind"], "AgentgatewayPolicy");
    let status = &body["status"];
    assert_eq!(
        types(&status["conditions"]),
        [("Accepted".into(), "True".into(), "Accepted".into())]
    );
    assert_eq!(status["conditions"][0]["observedGeneration"], 2);
    let ancestor = &status["ancestors"][0];
    assert_eq!(
        ancestor["ancestorRef"],
        json!({"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "r"})
    );
    assert_eq!(ancestor["controllerName"], "agentgateway.dev/agentgateway");
    assert_eq!(
        types(&ancestor["conditions"]),
        [("Accepted".into(), "True".into(), "Accepted".into())]
    );
    assert_eq!(ancestor["conditions"][0]["observedGeneration"], 2);
    assert_eq!(status["ancestors"].as_array().unwrap().len(), 1);
    task.await.unwrap().unwrap();

    // Stored as written (a later resourceVersion): nothing to write, not even the same again.
    let mut stored = policy;
    stored.status = Some(serde_json::from_value(status.clone()).unwrap());
    stored.metadata.resource_version = Some("51".into());
    let task = tokio::spawn(policy::reconcile(Arc::new(stored), Arc::clone(&ctx)));
    expect_no_call(&mut api).await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn without_redis_a_global_limit_is_not_accepted_naming_the_target_and_field() {
    let policy = limits_policy();
    let Harness { ctx, mut api, .. } = harness(Objects {
        routes: vec![http_route()],
        backends: vec![llm_backend()],
        policies: vec![policy.clone()],
        ..Objects::default()
    });
    let task = tokio::spawn(policy::reconcile(
        Arc::new(policy.clone()),
        Arc::clone(&ctx),
    ));
    let (_, body) = expect(
        &mut api,
        "PATCH",
        POLICY_STATUS,
        serde_json::to_value(&policy).unwrap(),
    )
    .await;
    let condition = &body["status"]["conditions"][0];
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "RedisNotConfigured");
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.starts_with("HTTPRoute r: spec.rateLimit.global: needs Redis"),
        "{message}"
    );
    let ancestor = &body["status"]["ancestors"][0]["conditions"][0];
    assert_eq!(ancestor["reason"], "RedisNotConfigured");
    let (_, event) = expect(
        &mut api,
        "POST",
        "/apis/events.k8s.io/v1/namespaces/infra/events",
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": null}),
    )
    .await;
    assert_eq!(
        (&event["type"], &event["reason"]),
        (&json!("Warning"), &json!("RedisNotConfigured"))
    );
    task.await.unwrap().unwrap();
    expect_no_call(&mut api).await;
}

#[tokio::test]
async fn the_secrets_a_policy_selects_are_fetched_and_become_its_consumers() {
    let policy: AgentgatewayPolicy = yaml(
        "
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayPolicy
metadata: {name: limits, namespace: infra, generation: 1}
spec:
  targetRefs:
  - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}
  - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: missing}
  auth:
    apiKeys:
      secretSelector: {matchLabels: {consumer-of: r}}
",
    );
    let selected: PartialObjectMeta<Secret> = yaml(
        "metadata: {name: alice, namespace: infra, resourceVersion: '9', labels: {consumer-of: r}}",
    );
    let other: PartialObjectMeta<Secret> =
        yaml("metadata: {name: helm-release, namespace: infra, resourceVersion: '3'}");
    let Harness { ctx, mut api, .. } = harness(Objects {
        routes: vec![http_route()],
        backends: vec![llm_backend()],
        policies: vec![policy.clone()],
        secrets: vec![selected, other],
        ..Objects::default()
    });
    let task = tokio::spawn(policy::reconcile(
        Arc::new(policy.clone()),
        Arc::clone(&ctx),
    ));
    // Only the selected Secret's data is read; never the others'.
    expect(
        &mut api,
        "GET",
        "/api/v1/namespaces/infra/secrets/alice",
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "alice", "namespace": "infra", "resourceVersion": "9",
                         "labels": {"consumer-of": "r"}},
            "data": {"api-key": "c2stYWxpY2U="},
        }),
    )
    .await;
    let (_, body) = expect(
        &mut api,
        "PATCH",
        POLICY_STATUS,
        serde_json::to_value(&policy).unwrap(),
    )
    .await;
    let ancestors = body["status"]["ancestors"].as_array().unwrap();
    assert_eq!(ancestors.len(), 2);
    let accepted = &ancestors[0]["conditions"][0];
    assert_eq!(accepted["status"], "True");
    assert_eq!(
        accepted["message"],
        "the policy applies to HTTPRoute r: 1 consumer (alice)"
    );
    assert_eq!(ancestors[1]["conditions"][0]["reason"], "TargetNotFound");
    let overall = &body["status"]["conditions"][0];
    assert_eq!(overall["reason"], "TargetNotFound");
    assert!(
        overall["message"]
            .as_str()
            .unwrap()
            .starts_with("HTTPRoute missing: spec.targetRefs[1]: "),
        "{overall}"
    );
    // No key value anywhere in what was written.
    assert!(!body.to_string().contains("sk-alice"));
    expect(
        &mut api,
        "POST",
        "/apis/events.k8s.io/v1/namespaces/infra/events",
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": null}),
    )
    .await;
    task.await.unwrap().unwrap();
}

/// A 404 as the API server answers it.
fn not_found() -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404})
}

#[tokio::test]
async fn a_gateway_compile_puts_the_selected_consumers_key_hashes_never_keys_into_its_credentials()
{
    let gateway = gateway_of("agentgateway");
    let policy: AgentgatewayPolicy = yaml(
        "
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayPolicy
metadata: {name: keys, namespace: infra, generation: 1}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
  auth:
    apiKeys:
      secretSelector: {matchLabels: {consumer-of: gw}}
  rateLimit:
    global: [{requests: 100, per: Minute, key: consumer}]
",
    );
    let selected: PartialObjectMeta<Secret> = yaml(
        "metadata: {name: alice, namespace: infra, resourceVersion: '9', labels: {consumer-of: gw}}",
    );
    let Harness { ctx, mut api, .. } = harness(Objects {
        classes: vec![class()],
        gateways: vec![gateway.clone()],
        routes: vec![http_route()],
        backends: vec![llm_backend()],
        policies: vec![policy],
        secrets: vec![selected],
        redis: true,
        ..Objects::default()
    });
    let task = tokio::spawn(gateway::reconcile(
        Arc::new(gateway.clone()),
        Arc::clone(&ctx),
    ));
    expect(
        &mut api,
        "GET",
        "/api/v1/namespaces/infra/secrets/alice",
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "alice", "namespace": "infra", "resourceVersion": "9",
                         "labels": {"consumer-of": "gw"}},
            "data": {"api-key": "c2stYWxpY2U="},
        }),
    )
    .await;
    let mut written = std::collections::BTreeMap::new();
    for path in [
        "/api/v1/namespaces/infra/serviceaccounts/gw",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/infra/roles/gw",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/infra/rolebindings/gw",
        "/api/v1/namespaces/infra/secrets/gw-credentials",
        "/api/v1/namespaces/infra/configmaps/gw-config",
        "/api/v1/namespaces/infra/services/gw",
        "/apis/apps/v1/namespaces/infra/deployments/gw",
    ] {
        expect_status(&mut api, "GET", path, 404, not_found()).await;
        written.insert(path, expect_echo(&mut api, "PATCH", path).await);
    }
    // No autoscaling or budget asked for: each is looked for once, to delete a stale one.
    for path in [
        "/apis/autoscaling/v2/namespaces/infra/horizontalpodautoscalers/gw",
        "/apis/policy/v1/namespaces/infra/poddisruptionbudgets/gw",
    ] {
        expect_status(&mut api, "GET", path, 404, not_found()).await;
    }
    let secret = &written["/api/v1/namespaces/infra/secrets/gw-credentials"];
    let hashes = secret["data"]["apikeys_infra_keys"].as_str().unwrap();
    let hashes =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, hashes).unwrap();
    let hashes: Value = serde_json::from_slice(&hashes).unwrap();
    assert_eq!(
        hashes,
        json!([{"consumer": "alice", "sha256": "099295a3784e1bd368dc348843a7398c1931b6b8ec2504c73e91ed2040bdc46c"}])
    );
    let everything = serde_json::to_string(&written).unwrap();
    assert!(!everything.contains("sk-alice") && !everything.contains("c2stYWxpY2U="));
    let config = written["/api/v1/namespaces/infra/configmaps/gw-config"]["data"]["config.yaml"]
        .as_str()
        .unwrap();
    assert!(config.contains("apikeys_infra_keys"), "{config}");
    let args = &written["/apis/apps/v1/namespaces/infra/deployments/gw"]["spec"]["template"]["spec"]
        ["containers"][0]["args"];
    let args: Vec<&str> = args
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.windows(2)
            .any(|w| w == ["--redis-url", "redis://redis.infra:6379"]),
        "{args:?}"
    );
    // No ready proxy pod yet: the Gateway says Pending.
    expect(
        &mut api,
        "PATCH",
        "/apis/gateway.networking.k8s.io/v1/namespaces/infra/gateways/gw/status",
        serde_json::to_value(&gateway).unwrap(),
    )
    .await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_gateway_compile_fetches_only_its_certificate_secret_and_puts_it_in_the_credentials() {
    let gateway: Gateway = yaml(
        "
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra, uid: u1, generation: 2, resourceVersion: '10'}
spec:
  gatewayClassName: agentgateway
  listeners:
  - {name: web, port: 8443, protocol: HTTPS, tls: {certificateRefs: [{name: gw-cert}]}}
",
    );
    let certificate: PartialObjectMeta<Secret> =
        yaml("metadata: {name: gw-cert, namespace: infra, resourceVersion: '5'}");
    let other: PartialObjectMeta<Secret> =
        yaml("metadata: {name: helm-release, namespace: infra, resourceVersion: '3'}");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["llm.example.com".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let b64 = |text: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, text);
    let Harness { ctx, mut api, .. } = harness(Objects {
        classes: vec![class()],
        gateways: vec![gateway.clone()],
        routes: vec![http_route()],
        backends: vec![llm_backend()],
        secrets: vec![certificate, other],
        ..Objects::default()
    });
    let task = tokio::spawn(gateway::reconcile(
        Arc::new(gateway.clone()),
        Arc::clone(&ctx),
    ));
    // Only the certificate's data is read; never the other Secret's.
    expect(
        &mut api,
        "GET",
        "/api/v1/namespaces/infra/secrets/gw-cert",
        json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "gw-cert", "namespace": "infra", "resourceVersion": "5"},
            "data": {"tls.crt": b64(&cert.pem()), "tls.key": b64(&key.serialize_pem())},
        }),
    )
    .await;
    let mut written = std::collections::BTreeMap::new();
    for path in [
        "/api/v1/namespaces/infra/serviceaccounts/gw",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/infra/roles/gw",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/infra/rolebindings/gw",
        "/api/v1/namespaces/infra/secrets/gw-credentials",
        "/api/v1/namespaces/infra/configmaps/gw-config",
        "/api/v1/namespaces/infra/services/gw",
        "/apis/apps/v1/namespaces/infra/deployments/gw",
    ] {
        expect_status(&mut api, "GET", path, 404, not_found()).await;
        written.insert(path, expect_echo(&mut api, "PATCH", path).await);
    }
    // No autoscaling or budget asked for: each is looked for once, to delete a stale one.
    for path in [
        "/apis/autoscaling/v2/namespaces/infra/horizontalpodautoscalers/gw",
        "/apis/policy/v1/namespaces/infra/poddisruptionbudgets/gw",
    ] {
        expect_status(&mut api, "GET", path, 404, not_found()).await;
    }
    let credentials = &written["/api/v1/namespaces/infra/secrets/gw-credentials"];
    let bundle = credentials["data"]["tls_infra_gw-cert"].as_str().unwrap();
    let bundle =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, bundle).unwrap();
    let bundle = String::from_utf8(bundle).unwrap();
    assert!(bundle.contains("BEGIN CERTIFICATE") && bundle.contains("PRIVATE KEY"));
    let config = written["/api/v1/namespaces/infra/configmaps/gw-config"]["data"]["config.yaml"]
        .as_str()
        .unwrap();
    assert!(config.contains("tls_infra_gw-cert"), "{config}");
    assert!(!config.contains("PRIVATE KEY"), "{config}");
    let port = &written["/api/v1/namespaces/infra/services/gw"]["spec"]["ports"][0];
    assert_eq!(port["name"], "https-web");
    assert_eq!(port["appProtocol"], "https");
    assert_eq!(port["port"], 8443);
    let (_, status) = expect(
        &mut api,
        "PATCH",
        "/apis/gateway.networking.k8s.io/v1/namespaces/infra/gateways/gw/status",
        serde_json::to_value(&gateway).unwrap(),
    )
    .await;
    let listener = &status["status"]["listeners"][0];
    let resolved = listener["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ResolvedRefs")
        .unwrap();
    assert_eq!(resolved["status"], "True");
    assert_eq!(listener["attachedRoutes"], 1);
    task.await.unwrap().unwrap();
}

fn parameters(name: &str, spec: &str) -> AgentgatewayParameters {
    yaml(&format!(
        "
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayParameters
metadata: {{name: {name}, namespace: infra, generation: 1}}
spec: {spec}
"
    ))
}

fn gateway_with_parameters(name: &str) -> Gateway {
    let mut gateway = gateway_of("agentgateway");
    gateway.spec.infrastructure = Some(yaml(&format!(
        "{{labels: {{team: ml}}, parametersRef: {{group: agentgateway.dev, kind: AgentgatewayParameters, name: {name}}}}}"
    )));
    gateway
}

#[tokio::test]
async fn on_kubernetes_1_20_an_autoscaled_gateway_gets_a_v2beta2_autoscaler_a_v1beta1_budget_and_no_replicas()
 {
    let gateway = gateway_with_parameters("scaled");
    let Harness { ctx, mut api, .. } = harness(Objects {
        classes: vec![class()],
        gateways: vec![gateway.clone()],
        routes: vec![http_route()],
        backends: vec![llm_backend()],
        parameters: vec![parameters(
            "scaled",
            "{autoscaling: {minReplicas: 2, maxReplicas: 6, targetCPUUtilizationPercentage: 70}, podDisruptionBudget: {maxUnavailable: 1}, service: {type: LoadBalancer}}",
        )],
        scaling: crate::resources::ScalingApis {
            hpa: crate::resources::HpaVersion::V2beta2,
            pdb: crate::resources::PdbVersion::V1beta1,
        },
        ..Objects::default()
    });
    let task = tokio::spawn(gateway::reconcile(
        Arc::new(gateway.clone()),
        Arc::clone(&ctx),
    ));
    let mut written = std::collections::BTreeMap::new();
    for path in [
        "/api/v1/namespaces/infra/serviceaccounts/gw",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/infra/roles/gw",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/infra/rolebindings/gw",
        "/api/v1/namespaces/infra/secrets/gw-credentials",
        "/api/v1/namespaces/infra/configmaps/gw-config",
        "/api/v1/namespaces/infra/services/gw",
        "/apis/apps/v1/namespaces/infra/deployments/gw",
        "/apis/autoscaling/v2beta2/namespaces/infra/horizontalpodautoscalers/gw",
        "/apis/policy/v1beta1/namespaces/infra/poddisruptionbudgets/gw",
    ] {
        expect_status(&mut api, "GET", path, 404, not_found()).await;
        written.insert(path, expect_echo(&mut api, "PATCH", path).await);
    }
    let deployment = &written["/apis/apps/v1/namespaces/infra/deployments/gw"];
    assert!(
        deployment["spec"].get("replicas").is_none(),
        "the autoscaler owns replicas: {}",
        deployment["spec"]
    );
    assert_eq!(deployment["metadata"]["labels"]["team"], "ml");
    let service = &written["/api/v1/namespaces/infra/services/gw"];
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    let hpa = &written["/apis/autoscaling/v2beta2/namespaces/infra/horizontalpodautoscalers/gw"];
    assert_eq!(hpa["apiVersion"], "autoscaling/v2beta2");
    assert_eq!(hpa["spec"]["maxReplicas"], 6);
    assert_eq!(hpa["metadata"]["ownerReferences"][0]["uid"], "u1");
    let pdb = &written["/apis/policy/v1beta1/namespaces/infra/poddisruptionbudgets/gw"];
    assert_eq!(pdb["apiVersion"], "policy/v1beta1");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    let (_, status) = expect(
        &mut api,
        "PATCH",
        "/apis/gateway.networking.k8s.io/v1/namespaces/infra/gateways/gw/status",
        serde_json::to_value(&gateway).unwrap(),
    )
    .await;
    assert_eq!(types(&status["status"]["conditions"])[0].1, "True");
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn invalid_parameters_keep_the_running_proxy_and_the_gateway_says_invalid_parameters() {
    let gateway = gateway_with_parameters("broken");
    let Harness { ctx, mut api, .. } = harness(Objects {
        classes: vec![class()],
        gateways: vec![gateway.clone()],
        parameters: vec![parameters(
            "broken",
            "{replicas: 2, autoscaling: {maxReplicas: 3}}",
        )],
        ..Objects::default()
    });
    let task = tokio::spawn(gateway::reconcile(
        Arc::new(gateway.clone()),
        Arc::clone(&ctx),
    ));
    // Config and keys still reach the proxy; no Service, Deployment, autoscaler or budget is
    // touched, so nothing falls back to the defaults.
    for path in [
        "/api/v1/namespaces/infra/serviceaccounts/gw",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/infra/roles/gw",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/infra/rolebindings/gw",
        "/api/v1/namespaces/infra/secrets/gw-credentials",
        "/api/v1/namespaces/infra/configmaps/gw-config",
    ] {
        expect_status(&mut api, "GET", path, 404, not_found()).await;
        let written = expect_echo(&mut api, "PATCH", path).await;
        assert_eq!(
            written["metadata"]["labels"]["team"], "ml",
            "the infrastructure labels stay: {path}"
        );
    }
    let (_, event) = expect(
        &mut api,
        "POST",
        "/apis/events.k8s.io/v1/namespaces/infra/events",
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": null}),
    )
    .await;
    assert_eq!(event["reason"], "InvalidParameters");
    let (_, status) = expect(
        &mut api,
        "PATCH",
        "/apis/gateway.networking.k8s.io/v1/namespaces/infra/gateways/gw/status",
        serde_json::to_value(&gateway).unwrap(),
    )
    .await;
    let accepted = &status["status"]["conditions"][0];
    assert_eq!(
        (&accepted["status"], &accepted["reason"]),
        (&json!("False"), &json!("InvalidParameters"))
    );
    let message = accepted["message"].as_str().unwrap();
    assert!(
        message.starts_with("AgentgatewayParameters infra/broken is invalid: spec.autoscaling:"),
        "{message}"
    );
    task.await.unwrap().unwrap();
    expect_no_call(&mut api).await;
}
