//! The operator as a local process.

use super::*;

/// How to start an operator process.
#[derive(Clone, Debug)]
pub struct OperatorOpts {
    /// Log file name and identity (`POD_NAME`/`HOSTNAME` are set to it).
    pub name: String,
    pub leader_election: bool,
    pub lease_namespace: String,
    /// `--proxy-replicas`: replicas of every proxy Deployment the operator creates (default 1).
    pub proxy_replicas: u32,
    /// `--redis-url` and `--redis-password-secret` (`namespace/name`): Redis for the proxies'
    /// global limits and budgets.
    pub redis: Option<(String, Option<String>)>,
}

impl OperatorOpts {
    pub fn new(name: &str) -> OperatorOpts {
        OperatorOpts {
            name: name.to_owned(),
            leader_election: false,
            lease_namespace: NS.to_owned(),
            proxy_replicas: 1,
            redis: None,
        }
    }
}

/// The operator, as a local process with the admin kubeconfig.
pub struct Operator {
    pub proc: Proc,
    pub metrics_port: u16,
    pub health_port: u16,
    pub opts: OperatorOpts,
}

impl Operator {
    pub fn start(opts: OperatorOpts) -> Operator {
        let e = env();
        let bin = e.bin_dir.join("agentgateway-operator");
        assert!(bin.exists(), "{} missing: build it first", bin.display());
        let metrics_port = free_port();
        let mut health_port = free_port();
        while health_port == metrics_port {
            health_port = free_port();
        }
        let mut c = cmd(&bin);
        c.args(["--proxy-image", PROXY_IMAGE])
            .args(["--proxy-image-pull-policy", "Never"])
            .args(["--proxy-replicas", &opts.proxy_replicas.to_string()])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(["--health-addr", &format!("127.0.0.1:{health_port}")])
            .args([
                "--leader-election",
                if opts.leader_election {
                    "true"
                } else {
                    "false"
                },
            ])
            .args(["--lease-namespace", &opts.lease_namespace])
            // The API server (inside the netns) cannot reach a webhook on the host: the webhook
            // scenario runs its operator inside the netns.
            .args(["--webhook", "false"])
            .args(["--log-format", "text"])
            .env("POD_NAME", &opts.name)
            .env("HOSTNAME", &opts.name)
            .env("NO_COLOR", "1");
        if let Some((url, password_secret)) = &opts.redis {
            c.args(["--redis-url", url]);
            if let Some(secret) = password_secret {
                c.args(["--redis-password-secret", secret]);
            }
        }
        if std::env::var_os("RUST_LOG").is_none() {
            c.env("RUST_LOG", "info");
        }
        let mut proc = Proc::spawn(&opts.name, c);
        let name = opts.name.clone();
        wait_for(
            &format!("operator {name} health port {health_port}"),
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                if !proc.running() {
                    panic!("operator {name} exited; log:\n{}", proc.log_tail(60));
                }
                if port_open(health_port) {
                    Ok(())
                } else {
                    Err("not listening".into())
                }
            },
        );
        say(format!(
            "operator {name} running (pid {}, metrics :{metrics_port}, health :{health_port}, log {})",
            proc.pid(),
            proc.log.display()
        ));
        Operator {
            proc,
            metrics_port,
            health_port,
            opts,
        }
    }

    /// The metrics text.
    pub fn metrics(&self) -> io::Result<String> {
        http(
            self.metrics_port,
            "GET",
            "/metrics",
            None,
            Duration::from_secs(5),
        )
        .map(|r| r.body)
    }

    /// GET `path` on the health port: `(status, body)`.
    pub fn health(&self, path: &str) -> io::Result<(u16, String)> {
        http(self.health_port, "GET", path, None, Duration::from_secs(5))
            .map(|r| (r.status, r.body))
    }
}
