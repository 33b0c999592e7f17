//! Command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// agentgateway proxy: an OpenAI-compatible LLM gateway.
#[derive(Parser, Debug, Clone)]
#[command(name = "agentgateway-proxy", version, about)]
pub struct Args {
    /// A YAML file, or a directory of `*.yaml` files, holding Kubernetes manifests
    /// (AgentgatewayBackend, HTTPRoute, Gateway, Secret). Watched: edits apply within a second.
    #[arg(
        long,
        env = "AGENTGATEWAY_CONFIG",
        required_unless_present = "kube_config_map",
        conflicts_with = "kube_config_map"
    )]
    pub config: Option<PathBuf>,

    /// Cluster mode: the compiled config from this ConfigMap (`namespace/name`, key `config.yaml`),
    /// watched through the API server (in-cluster config or KUBECONFIG).
    #[arg(long, requires = "kube_secret")]
    pub kube_config_map: Option<String>,

    /// Cluster mode: the provider keys from this Secret (`namespace/name`).
    #[arg(long, requires = "kube_config_map")]
    pub kube_secret: Option<String>,

    /// Address of the default listener (used when the config has no Gateway); the IP is also used
    /// for the ports of Gateway listeners.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Readiness endpoint (`/healthz/ready`).
    #[arg(long, default_value = "0.0.0.0:15021")]
    pub ready_addr: SocketAddr,

    /// Prometheus metrics endpoint (`/metrics`).
    #[arg(long, default_value = "0.0.0.0:15020")]
    pub metrics_addr: SocketAddr,

    /// Largest request body in bytes; larger requests get a 413.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    pub body_limit: usize,

    /// How long in-flight requests and streams may take to finish on shutdown.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Log format: `json` (one object per line) or `text`.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    pub log_format: String,

    /// Worker threads (default: one per CPU).
    #[arg(long)]
    pub threads: Option<usize>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    agentgateway_crds::duration::parse_duration(text).map_err(|e| e.to_string())
}
