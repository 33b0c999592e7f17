//! The test LLM servers (`mock-llm`), inside the cluster's network namespace.

use super::*;

/// Starts the `mock-llm` binary inside the cluster's netns (through `testenv/testenv-exec.sh`),
/// listening on `listen` (e.g. `10.250.0.1:8090`).
pub fn start_mock_llm(name: &str, listen: &str, model: &str, extra: &[&str]) -> Proc {
    let e = env();
    let bin = e.bin_dir.join("mock-llm");
    assert!(bin.exists(), "{} missing: build it first", bin.display());
    let mut c = cmd(e.testenv_dir.join("testenv-exec.sh"));
    c.arg(bin)
        .args(["--listen", listen, "--model", model, "--name", name])
        .args(extra);
    let mut p = Proc::spawn(name, c);
    p.wait_log("mock-llm listening", Duration::from_secs(15));
    p
}

/// Runs `CMD` inside the cluster's netns (pod IPs, Service IPs, cluster DNS reachable).
pub fn in_netns(args: &[&str]) -> Out {
    let mut c = cmd("ip");
    c.args(["netns", "exec", NETNS]).args(args);
    run(c, None)
}

/// A `mock-llm` running in this test process (so the test can read the requests it recorded) but
/// listening inside the cluster's netns: a helper thread enters the netns (setns is per thread) and
/// binds the socket there; the socket keeps that namespace when tokio serves it from other threads.
pub struct NetnsMock {
    pub mock: MockLlm,
    // dropped after `mock`
    _runtime: tokio::runtime::Runtime,
}

/// Moves the calling thread into the cluster's network namespace (setns is per thread): the
/// sockets it opens afterwards reach pod IPs and Service ClusterIPs (through kube-proxy's rules),
/// and keep that namespace whichever thread uses them later. Needs root, as `run.sh` runs.
pub fn enter_cluster_netns() -> io::Result<()> {
    let ns = fs::File::open(format!("/run/netns/{NETNS}"))?;
    nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

impl NetnsMock {
    pub fn start(listen: &str, config: MockLlmConfig) -> NetnsMock {
        let addr: SocketAddr = listen.parse().expect("a socket address");
        let std_listener = std::thread::spawn(move || -> io::Result<std::net::TcpListener> {
            enter_cluster_netns()?;
            let l = std::net::TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok(l)
        })
        .join()
        .expect("netns thread")
        .unwrap_or_else(|e| panic!("bind {listen} in netns {NETNS}: {e}"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let mock = runtime
            .block_on(async {
                let l = tokio::net::TcpListener::from_std(std_listener)?;
                MockLlm::start_on(l, config).await
            })
            .expect("start mock-llm");
        NetnsMock {
            mock,
            _runtime: runtime,
        }
    }
}

/// Makes the cluster's DNS answer `host.docker.internal` with the node IP (where the test LLM
/// servers listen), as Docker Desktop does for the tutorial's user. `dns-sync.py` serves the file's
/// lines within 2 s.
pub fn ensure_extra_hosts() {
    let file = env().home.join("state/extra-hosts");
    let line = format!("{NODE_IP} host.docker.internal");
    let text = fs::read_to_string(&file).unwrap_or_default();
    if !text.lines().any(|l| l.trim() == line) {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .unwrap_or_else(|e| panic!("open {}: {e}", file.display()));
        writeln!(f, "{line}").expect("write extra-hosts");
        say(format!("added '{line}' to {}", file.display()));
    }
}
