//! Command-line flags; every flag can also be set from the environment variable it names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

use crate::cache::Scope;
use crate::resources::ProxySettings;
use crate::webhook::WebhookSettings;

fn duration(text: &str) -> Result<Duration, String> {
    match agentgateway_crds::duration::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be more than zero".to_string()),
        Ok(d) => Ok(d),
        Err(error) => Err(error.to_string()),
    }
}

/// A Secret name is a DNS-1123 subdomain; a typo is refused at start, not found as pull errors.
fn parse_secret_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if agentgateway_crds::validation::is_dns_subdomain(name) {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{name:?} is not a valid Secret name (a DNS-1123 subdomain)"
        ))
    }
}

/// The names once each, first occurrence first (the chart may pass a name twice).
fn dedup_in_order(names: &[String]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    names
        .iter()
        .filter(|name| seen.insert(name.as_str()))
        .cloned()
        .collect()
}

/// agentgateway operator: accepts backends and runs a configured proxy for every Gateway of the
/// class `agentgateway`.
#[derive(Parser, Debug, Clone)]
#[command(name = "agentgateway-operator", version, about)]
pub struct Args {
    /// The proxy image of every Gateway's Deployment.
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_PROXY_IMAGE",
        default_value = "agentgateway-proxy:dev"
    )]
    pub proxy_image: String,

    /// The proxy container's `imagePullPolicy`.
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_PROXY_IMAGE_PULL_POLICY",
        default_value = "IfNotPresent",
        value_parser = ["Always", "IfNotPresent", "Never"]
    )]
    pub proxy_image_pull_policy: String,

    /// Replicas of every proxy Deployment.
    #[arg(long, env = "AGENTGATEWAY_OPERATOR_PROXY_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(0..))]
    pub proxy_replicas: i32,

    /// CPU request of the proxy container.
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_PROXY_CPU_REQUEST",
        default_value = "50m"
    )]
    pub proxy_cpu_request: String,

    /// Memory request of the proxy container.
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_PROXY_MEMORY_REQUEST",
        default_value = "32Mi"
    )]
    pub proxy_memory_request: String,

    /// CPU limit of the proxy container.
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_PROXY_CPU_LIMIT",
        default_value = "1"
    )]
    pub proxy_cpu_limit: String,

    /// Memory limit of the proxy container.
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_PROXY_MEMORY_LIMIT",
        default_value = "256Mi"
    )]
    pub proxy_memory_limit: String,

    /// `RUST_LOG` of the proxy container (`info`, `debug`, `agentgateway_proxy=debug`, ...).
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_PROXY_LOG_LEVEL",
        default_value = "info"
    )]
    pub proxy_log_level: String,

    /// An image pull secret of every proxy pod (a Secret name in the Gateway's namespace);
    /// repeat the flag, or separate names with commas. A name missing there only costs an event:
    /// the kubelet then pulls without it.
    #[arg(
        long = "proxy-image-pull-secret",
        env = "AGENTGATEWAY_OPERATOR_PROXY_IMAGE_PULL_SECRETS",
        value_delimiter = ',',
        value_parser = parse_secret_name
    )]
    pub proxy_image_pull_secrets: Vec<String>,

    /// Address of the Prometheus endpoint (`/metrics`); port 0 picks a free port.
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: SocketAddr,

    /// Address of the probes (`/healthz`, `/readyz`); port 0 picks a free port.
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_HEALTH_ADDR",
        default_value = "0.0.0.0:8081"
    )]
    pub health_addr: SocketAddr,

    /// Run the controllers only while holding the Lease (`--leader-election=false` to disable).
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_LEADER_ELECTION",
        default_value_t = true,
        action = ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub leader_election: bool,

    /// Name of the leader-election Lease.
    #[arg(
        long,
        alias = "lease-name",
        env = "AGENTGATEWAY_OPERATOR_LEADER_ELECTION_NAME",
        default_value = "agentgateway-operator"
    )]
    pub leader_election_name: String,

    /// Namespace of the leader-election Lease (the operator's own namespace).
    #[arg(
        long,
        alias = "lease-namespace",
        env = "POD_NAMESPACE",
        default_value = "agentgateway-system"
    )]
    pub leader_election_namespace: String,

    /// Work only in these namespaces (comma-separated): Gateways, routes, backends, the
    /// Secrets and ConfigMaps they refer to and the proxies' objects are watched and written there
    /// only, so the operator's permissions can be Roles in those namespaces. Empty: every
    /// namespace.
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_WATCH_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub watch_namespaces: Vec<String>,

    /// Serve the admission webhooks (`--webhook=false` to disable).
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_WEBHOOK",
        default_value_t = true,
        action = ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub webhook: bool,

    /// The webhooks' HTTPS address; port 0 picks a free port.
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_WEBHOOK_ADDR",
        default_value = "0.0.0.0:9443"
    )]
    pub webhook_addr: SocketAddr,

    /// The operator's namespace, where the webhook Service and certificate Secret live.
    #[arg(long, env = "POD_NAMESPACE", default_value = "agentgateway-system")]
    pub webhook_namespace: String,

    /// The webhook Service: the certificate is issued for `<service>.<namespace>.svc`.
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_WEBHOOK_SERVICE",
        default_value = "agentgateway-webhook"
    )]
    pub webhook_service: String,

    /// The name of the Validating- and MutatingWebhookConfiguration whose `caBundle` is kept.
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_WEBHOOK_CONFIGURATION",
        default_value = "agentgateway-webhook"
    )]
    pub webhook_configuration: String,

    /// The Secret holding the generated CA and serving certificate (shared by all replicas).
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_WEBHOOK_CERT_SECRET",
        default_value = "agentgateway-webhook-cert"
    )]
    pub webhook_cert_secret: String,

    /// Serve `tls.crt`/`tls.key` from this directory (e.g. a cert-manager Secret mounted there)
    /// instead of generating a certificate; the `caBundle` is then left to whoever issues it.
    #[arg(long, env = "AGENTGATEWAY_OPERATOR_WEBHOOK_CERT_DIR")]
    pub webhook_cert_dir: Option<PathBuf>,

    /// More DNS names or IP addresses for the generated certificate (webhooks configured by
    /// `url`); comma-separated or repeated.
    #[arg(
        long = "webhook-host",
        env = "AGENTGATEWAY_OPERATOR_WEBHOOK_HOSTS",
        value_delimiter = ','
    )]
    pub webhook_hosts: Vec<String>,

    /// Validity of the generated serving certificate; it is renewed when a third is left (the CA
    /// lives ten times as long).
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_WEBHOOK_CERT_VALIDITY",
        default_value = "8760h",
        value_parser = duration
    )]
    pub webhook_cert_validity: Duration,

    /// How long the webhooks keep answering after SIGTERM, while the API server stops using this
    /// replica.
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_WEBHOOK_SHUTDOWN_DELAY",
        default_value = "5s",
        value_parser = duration
    )]
    pub webhook_shutdown_delay: Duration,

    /// Log format: one JSON object per line, or human-readable text.
    #[arg(
        long,
        env = "AGENTGATEWAY_OPERATOR_LOG_FORMAT",
        value_enum,
        default_value = "json"
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

impl Args {
    /// How the webhooks are served; `None` when disabled.
    pub fn webhook_settings(&self) -> Option<WebhookSettings> {
        self.webhook.then(|| WebhookSettings {
            addr: self.webhook_addr,
            cert_dir: self.webhook_cert_dir.clone(),
            namespace: self.webhook_namespace.clone(),
            service: self.webhook_service.clone(),
            cert_secret: self.webhook_cert_secret.clone(),
            configuration: self.webhook_configuration.clone(),
            extra_hosts: self.webhook_hosts.clone(),
            cert_validity: self.webhook_cert_validity,
            shutdown_delay: self.webhook_shutdown_delay,
        })
    }

    /// The namespaces the operator works in.
    pub fn scope(&self) -> Scope {
        Scope::of(self.watch_namespaces.iter().cloned())
    }

    /// What every proxy Deployment is built with.
    pub fn proxy_settings(&self) -> ProxySettings {
        ProxySettings {
            image: self.proxy_image.clone(),
            image_pull_policy: self.proxy_image_pull_policy.clone(),
            replicas: self.proxy_replicas,
            cpu_request: self.proxy_cpu_request.clone(),
            memory_request: self.proxy_memory_request.clone(),
            cpu_limit: self.proxy_cpu_limit.clone(),
            memory_limit: self.proxy_memory_limit.clone(),
            log_level: self.proxy_log_level.clone(),
            image_pull_secrets: dedup_in_order(&self.proxy_image_pull_secrets),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let args = Args::try_parse_from(["agentgateway-operator"]).unwrap();
        assert_eq!(args.proxy_image, "agentgateway-proxy:dev");
        assert_eq!(args.proxy_image_pull_policy, "IfNotPresent");
        assert_eq!(args.proxy_replicas, 1);
        assert_eq!(args.metrics_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(args.health_addr.to_string(), "0.0.0.0:8081");
        assert!(args.leader_election);
        assert_eq!(args.leader_election_name, "agentgateway-operator");
        let webhook = args.webhook_settings().unwrap();
        assert_eq!(webhook.addr.to_string(), "0.0.0.0:9443");
        assert_eq!(webhook.cert_validity, Duration::from_secs(365 * 86_400));
        assert_eq!(webhook.cert_secret, "agentgateway-webhook-cert");
    }

    #[test]
    fn the_chart_command_line_parses() {
        let args = Args::try_parse_from([
            "agentgateway-operator",
            "--webhook-addr=0.0.0.0:9443",
            "--webhook-service=agentgateway-webhook",
            "--webhook-configuration=agentgateway-webhook",
            "--webhook-cert-secret=agentgateway-webhook-cert",
            "--webhook-host=127.0.0.1,localhost",
            "--webhook-cert-validity=90s",
        ])
        .unwrap();
        let webhook = args.webhook_settings().unwrap();
        assert_eq!(webhook.extra_hosts, vec!["127.0.0.1", "localhost"]);
        assert_eq!(webhook.cert_validity, Duration::from_secs(90));
        let args = Args::try_parse_from(["agentgateway-operator", "--webhook=false"]).unwrap();
        assert!(args.webhook_settings().is_none());
        assert!(
            Args::try_parse_from(["agentgateway-operator", "--webhook-cert-validity=0s"]).is_err()
        );
    }

    #[test]
    fn leader_election_can_be_switched_off_with_an_explicit_value() {
        let args =
            Args::try_parse_from(["agentgateway-operator", "--leader-election=false"]).unwrap();
        assert!(!args.leader_election);
        let args = Args::try_parse_from(["agentgateway-operator", "--leader-election"]).unwrap();
        assert!(args.leader_election);
    }

    #[test]
    fn the_e2e_command_line_parses() {
        let args = Args::try_parse_from([
            "agentgateway-operator",
            "--leader-election",
            "false",
            "--lease-namespace",
            "e2e-leader",
            "--health-addr",
            "127.0.0.1:0",
            "--proxy-image",
            "agentgateway-proxy:e2e",
            "--proxy-image-pull-policy",
            "Never",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ])
        .unwrap();
        assert_eq!(args.proxy_settings().image, "agentgateway-proxy:e2e");
        assert_eq!(args.log_format, LogFormat::Text);
        assert!(!args.leader_election);
        assert_eq!(args.leader_election_namespace, "e2e-leader");
    }

    #[test]
    fn proxy_pull_secrets_come_from_repeated_flags_or_a_list_once_each() {
        let args = Args::try_parse_from([
            "agentgateway-operator",
            "--proxy-image-pull-secret=regcred",
            "--proxy-image-pull-secret=mirror,regcred",
        ])
        .unwrap();
        assert_eq!(
            args.proxy_settings().image_pull_secrets,
            vec!["regcred", "mirror"]
        );
        let args = Args::try_parse_from(["agentgateway-operator"]).unwrap();
        assert!(args.proxy_settings().image_pull_secrets.is_empty());
        assert!(
            Args::try_parse_from([
                "agentgateway-operator",
                "--proxy-image-pull-secret=Reg_Cred"
            ])
            .is_err()
        );
    }

    #[test]
    fn an_unknown_pull_policy_is_refused() {
        assert!(
            Args::try_parse_from([
                "agentgateway-operator",
                "--proxy-image-pull-policy",
                "Sometimes"
            ])
            .is_err()
        );
    }
}
