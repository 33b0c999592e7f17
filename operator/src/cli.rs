//! Command-line flags; every flag can also be set from the environment variable it names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

use crate::cache::Scope;
use crate::error::RunError;
use crate::redis::{self, PasswordSecret, RedisSettings};
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

/// A data key of a Secret.
fn parse_data_key(text: &str) -> Result<String, String> {
    if agentgateway_crds::validation::is_data_key(text) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{text:?} is not a Secret data key ([-._a-zA-Z0-9]+)"
        ))
    }
}

/// A Redis timeout as the proxy flag takes it: whole milliseconds, at least one.
fn parse_redis_timeout(text: &str) -> Result<String, String> {
    let duration = duration(text)?;
    let ms = duration.as_millis();
    if ms == 0 || duration != Duration::from_millis(ms as u64) {
        return Err("must be a whole number of milliseconds, at least 1ms".to_string());
    }
    Ok(format!("{ms}ms"))
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

    /// The Redis every proxy counts shared rate limits (`rateLimit.global`) and budgets in:
    /// `redis://host:port[/db]` (TLS, `rediss://`, is not supported yet), without a password (use
    /// `--redis-password-secret`). Without it, policies that need Redis are `Accepted=False`
    /// `RedisNotConfigured` and not applied. Checked by [`Args::check`], not by the parser: a
    /// parser's error repeats the value, which may hold a password.
    #[arg(long, env = "AGENTGATEWAY_REDIS_URL")]
    pub redis_url: Option<String>,

    /// The Secret holding the Redis password, as `NAMESPACE/NAME`: the operator copies it into
    /// each Gateway's credentials Secret, from where the proxies read it.
    #[arg(
        long,
        env = "AGENTGATEWAY_REDIS_PASSWORD_SECRET",
        value_parser = redis::parse_secret_ref,
        requires = "redis_url"
    )]
    pub redis_password_secret: Option<(String, String)>,

    /// The data key of `--redis-password-secret` holding the password.
    #[arg(
        long,
        env = "AGENTGATEWAY_REDIS_PASSWORD_KEY",
        default_value = "password",
        value_parser = parse_data_key
    )]
    pub redis_password_key: String,

    /// How long a proxy waits for Redis before the policy's `failureMode` decides (the proxies'
    /// `--redis-timeout`), in whole milliseconds.
    #[arg(
        long,
        env = "AGENTGATEWAY_REDIS_TIMEOUT",
        default_value = "5ms",
        value_parser = parse_redis_timeout
    )]
    pub redis_timeout: String,

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
    /// What the parser cannot check without repeating a secret in its error: the Redis URL.
    pub fn check(&self) -> Result<(), RunError> {
        if let Some(url) = &self.redis_url {
            redis::check_url(url).map_err(RunError::RedisUrl)?;
        }
        Ok(())
    }

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
            redis: self.redis_settings(),
        }
    }

    /// How the proxies reach Redis; `None` without `--redis-url`.
    pub fn redis_settings(&self) -> Option<RedisSettings> {
        let url = self.redis_url.clone()?;
        let password = self
            .redis_password_secret
            .clone()
            .map(|(namespace, name)| PasswordSecret {
                namespace,
                name,
                key: self.redis_password_key.clone(),
            });
        Some(RedisSettings {
            url,
            timeout: self.redis_timeout.clone(),
            password,
        })
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
    fn redis_is_off_by_default_and_the_chart_flags_parse() {
        let args = Args::try_parse_from(["agentgateway-operator"]).unwrap();
        assert_eq!(args.proxy_settings().redis, None);
        let args = Args::try_parse_from([
            "agentgateway-operator",
            "--redis-url=redis://agentgateway-redis.agentgateway-system:6379",
            "--redis-password-secret=agentgateway-system/agentgateway-redis",
            "--redis-password-key=redis-password",
            "--redis-timeout=20ms",
        ])
        .unwrap();
        let redis = args.proxy_settings().redis.unwrap();
        assert_eq!(
            redis.url,
            "redis://agentgateway-redis.agentgateway-system:6379"
        );
        assert_eq!(redis.timeout, "20ms");
        assert_eq!(
            redis.password,
            Some(PasswordSecret {
                namespace: "agentgateway-system".into(),
                name: "agentgateway-redis".into(),
                key: "redis-password".into(),
            })
        );
        let args =
            Args::try_parse_from(["agentgateway-operator", "--redis-url=redis://r:6379"]).unwrap();
        let redis = args.redis_settings().unwrap();
        assert_eq!((redis.timeout.as_str(), redis.password), ("5ms", None));
    }

    #[test]
    fn bad_redis_flags_are_refused_without_echoing_a_password() {
        let args = Args::try_parse_from([
            "agentgateway-operator",
            "--redis-url=redis://:hunter2@r:6379",
        ])
        .unwrap();
        let error = args.check().unwrap_err().to_string();
        assert!(error.contains("holds a password"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        assert!(
            Args::try_parse_from(["agentgateway-operator"])
                .unwrap()
                .check()
                .is_ok()
        );
        for flags in [
            &["--redis-password-secret=ns/redis"][..],
            &["--redis-url=redis://r", "--redis-timeout=1500us"],
            &["--redis-url=redis://r", "--redis-timeout=0s"],
            &["--redis-url=redis://r", "--redis-password-key=a b"],
        ] {
            let mut argv = vec!["agentgateway-operator"];
            argv.extend_from_slice(flags);
            assert!(Args::try_parse_from(argv).is_err(), "{flags:?}");
        }
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
