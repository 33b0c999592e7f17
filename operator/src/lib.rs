//! The agentgateway operator: marks `AgentgatewayBackend`s and our GatewayClass `Accepted`, runs a
//! configured proxy (Deployment, Service, RBAC, ConfigMap, Secret) for every Gateway of the class
//! and reports Gateway and HTTPRoute status. The config itself comes from the pure compiler
//! (`agentgateway-compiler`); this crate reads the cluster into it and writes its output back.
//!
//! Startup: probes and metrics → wait for the CRDs → fill the caches (`/readyz` turns 200) →
//! win the leader-election Lease → run the controllers until SIGTERM or the Lease is lost.

pub mod apply;
pub mod backoff;
pub mod cache;
pub mod cli;
pub mod conditions;
pub mod context;
pub mod controllers;
pub mod crds;
pub mod error;
pub mod health;
pub mod install_owner;
pub mod leader;
pub mod metrics;
pub mod proxy_report;
pub mod redis;
pub mod resources;
pub mod route_views;
pub mod scaling;
pub mod shutdown;
pub mod webhook;

use std::sync::{Arc, Mutex};

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::cache::Stores;
use crate::cache::triggers::Triggers;
use crate::cli::{Args, LogFormat};
use crate::context::Context;
use crate::error::RunError;
use crate::health::Health;
use crate::leader::LeaderElection;
use crate::metrics::Metrics;
use crate::route_views::RouteViews;
use crate::shutdown::Shutdown;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialization (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Runs the operator until SIGTERM/SIGINT (`Ok`) or a fatal error such as a lost Lease.
pub async fn run(args: Args) -> Result<(), RunError> {
    args.check()?;
    let (registry, metrics, webhook_metrics) = Metrics::with_webhook();
    let health = Arc::new(Health::new(registry));
    let metrics_listener = health::bind(args.metrics_addr).await?;
    let metrics_addr = metrics_listener.local_addr().unwrap_or(args.metrics_addr);
    health::serve(metrics_listener, Arc::clone(&health));
    // One listener serves everything, so the same address for both needs only one bind.
    let health_addr = if args.health_addr == args.metrics_addr && args.metrics_addr.port() != 0 {
        metrics_addr
    } else {
        let listener = health::bind(args.health_addr).await?;
        let addr = listener.local_addr().unwrap_or(args.health_addr);
        health::serve(listener, Arc::clone(&health));
        addr
    };
    tracing::info!(metrics_addr = %metrics_addr, health_addr = %health_addr, "serving metrics and probes");

    let shutdown = Shutdown::install()?;
    let client = Client::try_default()
        .await
        .map_err(RunError::CreateClient)?;
    // What the operator creates for itself is owned by the chart's webhook Service (see
    // `install_owner`); an ownerReference must point into the object's own namespace.
    let owner =
        install_owner::install_owner(&client, &args.webhook_namespace, &args.webhook_service).await;
    // Webhooks are served by every replica, leader or not, from the start: admission must not
    // wait for caches or the Lease.
    let webhook = match args.webhook_settings() {
        Some(settings) => Some(
            webhook::start(
                settings,
                client.clone(),
                Arc::clone(&health),
                webhook_metrics,
                shutdown.clone(),
                owner.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let lease_owner = owner.filter(|_| args.leader_election_namespace == args.webhook_namespace);
    let result = run_controllers(
        &args,
        client,
        &health,
        metrics,
        &shutdown,
        webhook.as_ref(),
        lease_owner,
    )
    .await;
    // After SIGTERM the webhooks keep answering for their shutdown delay.
    if let Some(webhook) = webhook
        && result.is_ok()
    {
        webhook.stopped().await;
    }
    result
}

/// Waits for the CRDs and the caches, then runs the controllers while holding the Lease.
async fn run_controllers(
    args: &Args,
    client: Client,
    health: &Health,
    metrics: Metrics,
    shutdown: &Shutdown,
    webhook: Option<&webhook::RunningWebhook>,
    lease_owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
) -> Result<(), RunError> {
    let scope = args.scope();
    let Some(grants) = crds::wait_for_crds(&client, &scope, shutdown).await else {
        return Ok(());
    };
    let Some(scaling) = scaling::discover(&client, shutdown).await else {
        return Ok(());
    };
    let triggers = Triggers::default();
    let route_views = Arc::new(RouteViews::new(triggers.routes.refs.clone()));
    let forget = Arc::clone(&route_views);
    let stores = Stores::start(&client, &scope, grants, &triggers, move |gateway| {
        forget.forget(&controllers::object_key(gateway));
    });
    tokio::select! {
        synced = stores.wait_until_ready() => synced?,
        _ = shutdown.wait() => return Ok(()),
    }
    if let Some(webhook) = webhook {
        webhook.secrets.use_cache(
            stores.secrets.clone(),
            stores.referenced.clone(),
            scope.clone(),
        );
        webhook.targets.use_cache(
            stores.gateways.clone(),
            stores.routes.clone(),
            stores.backends.clone(),
            scope.clone(),
        );
    }
    health.set_ready();
    tracing::info!("caches synced");

    let identity = leader::identity();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: apply::FIELD_MANAGER.to_string(),
            instance: Some(identity.clone()),
        },
    );
    // The Redis password is copied into every proxy's credentials Secret: read it before the first
    // compile, so that no proxy starts without it only because the operator had not read it yet.
    let redis_password = match args.redis_settings().and_then(|r| r.password) {
        Some(secret) => {
            let wake = Arc::clone(&triggers.gateways.all);
            let source = redis::PasswordSource::start(&client, secret, move || wake.notify_one());
            // A Secret that does not exist lists fine (empty); only an API or permission error
            // keeps the cache empty, and that must not keep every Gateway from its config.
            tokio::select! {
                _ = source.wait_until_ready() => {}
                () = tokio::time::sleep(redis::PASSWORD_READ_LIMIT) => {
                    tracing::warn!(
                        secret = %format!("{}/{}", source.secret().namespace, source.secret().name),
                        limit_s = redis::PASSWORD_READ_LIMIT.as_secs(),
                        "the Redis password Secret could not be read in time; proxies start without it until it is"
                    );
                }
                _ = shutdown.wait() => return Ok(()),
            }
            Some(Arc::new(source))
        }
        None => None,
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        stores,
        scope,
        route_views,
        recorder,
        metrics: metrics.clone(),
        proxy: args.proxy_settings(),
        redis_password,
        backoff: Mutex::new(backoff::Backoff::default()),
        recent_status: Mutex::new(Default::default()),
        last_compiled: Mutex::new(Default::default()),
        scaling,
        absent: Mutex::default(),
    });

    if !args.leader_election {
        tracing::info!("leader election disabled");
        metrics.set_leader(true);
        controllers::run(ctx, triggers, shutdown.clone()).await;
        return Ok(());
    }
    let election = LeaderElection::new(
        client,
        &args.leader_election_namespace,
        &args.leader_election_name,
        identity,
        metrics,
    )
    .with_owner(lease_owner);
    tokio::select! {
        () = election.acquire() => {}
        _ = shutdown.wait() => return Ok(()),
    }
    // Losing the Lease ends the process (the Deployment restarts it as a follower), as
    // controller-runtime does: controllers that might have missed events must not keep writing.
    let result = tokio::select! {
        () = controllers::run(ctx, triggers, shutdown.clone()) => Ok(()),
        lost = election.keep() => Err(lost),
    };
    if result.is_ok() {
        election.release().await;
    }
    result
}
