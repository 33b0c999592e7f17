//! The `agentgateway-proxy` binary: flags, logging, signals; everything else is the library.

use std::process::ExitCode;

use agentgateway_proxy::access_log::AccessLog;
use agentgateway_proxy::cli::Args;
use agentgateway_proxy::source::file::FileSource;
use agentgateway_proxy::source::kube::KubeSource;
use agentgateway_proxy::{ProxyOptions, start};
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = Args::parse();
    let (writer, _flush_guard) = tracing_appender::non_blocking(std::io::stdout());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone());
    if args.log_format == "json" {
        subscriber
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        subscriber.init();
    }
    // Access lines share the writer but skip tracing's formatter (see access_log.rs); the
    // `access` target's level still turns them on and off.
    let access_log = if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        AccessLog::Off
    } else if args.log_format == "json" {
        AccessLog::Json(writer)
    } else {
        AccessLog::Tracing
    };
    // One thread: tokio's current-thread scheduler, which wakes and polls tasks without the
    // work-stealing machinery's atomics and queues (nginx's one event loop per worker).
    let mut runtime = match args.threads.map(|threads| threads.max(1)) {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.worker_threads(threads);
            runtime
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "failed to start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args, access_log))
}

async fn run(args: Args, access_log: AccessLog) -> ExitCode {
    let options = ProxyOptions {
        listen: args.listen,
        ready_addr: args.ready_addr,
        metrics_addr: args.metrics_addr,
        limits: args.limits(),
        access_log,
        redis: args.redis(),
        otlp: args.otlp(),
    };
    let started = match (&args.config, &args.kube_config_map, &args.kube_secret) {
        (Some(path), _, _) => start(options, FileSource::new(path)).await,
        (None, Some(config_map), Some(secret)) => match KubeSource::new(config_map, secret).await {
            Ok(source) => start(options, source).await,
            Err(error) => {
                tracing::error!(%error, "failed to start the cluster config source");
                return ExitCode::FAILURE;
            }
        },
        // clap requires one of the two sources.
        _ => return ExitCode::FAILURE,
    };
    let proxy = match started {
        Ok(proxy) => proxy,
        Err(error) => {
            tracing::error!(%error, "failed to start");
            return ExitCode::FAILURE;
        }
    };
    shutdown_signal().await;
    tracing::info!(delay = ?args.drain_delay, grace = ?args.drain_timeout, "shutting down: readiness fails, draining");
    proxy.shutdown(args.drain_delay, args.drain_timeout).await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
