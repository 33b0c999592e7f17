//! The end-to-end harness shared by `tests/scenarios.rs`.
//!
//! The tests drive a real Kubernetes 1.20 cluster (the toolkit in `e2e/testenv/`, brought up by
//! `e2e/run.sh`) the way a user does: `kubectl` from the host, `kubectl port-forward` to the proxy,
//! HTTP requests through it. The test LLM server runs inside the cluster's network namespace, at the
//! address the tutorial's `host.docker.internal` resolves to there; the operator runs as a local
//! process with the admin kubeconfig. Every process a test starts is a [`Proc`], killed when the guard
//! drops (also when the test panics); its PID is also written under `<artifacts>/pids/` so that
//! `run.sh` can kill leftovers of a test binary that died without unwinding.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use agentgateway_mock_llm::{MockLlm, MockLlmConfig};
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

pub mod admission;
pub mod chart;
pub mod tutorial_replay;

pub use tutorial_replay::{poll, replay_tutorial, secs, wait_served};

/// The namespace of the Helm chart (and of the tutorial).
pub const NS: &str = "agentgateway-system";
/// The chart's default Gateway, hence the proxy Deployment's name.
pub const GATEWAY: &str = "agentgateway-proxy";
/// The tutorial's model.
pub const MODEL: &str = "gemma-4-12b-it-Q5_K_M.gguf";
/// The cluster's network namespace (see `testenv/lib.sh`).
pub const NETNS: &str = "agw-testenv";
/// The node IP inside the netns; `host.docker.internal` resolves to it in the cluster.
pub const NODE_IP: &str = "10.250.0.1";
/// The tutorial's model server port.
pub const MOCK_PORT: u16 = 8090;
/// The proxy image `run.sh` loads into the cluster.
pub const PROXY_IMAGE: &str = "agentgateway-proxy:e2e";
/// Label put on every object a scenario creates, so leftovers can be found and deleted.
pub const TEST_LABEL: &str = "e2e.agentgateway.dev/test";

// ------------------------------------------------------------------------------------------ env

/// Paths and settings, from the environment (`run.sh` sets them; the defaults fit a local run).
pub struct Env {
    /// The workspace root (`/work/main`).
    pub workspace: PathBuf,
    /// `e2e/testenv`: the cluster toolkit.
    pub testenv_dir: PathBuf,
    /// `AGW_TESTENV_HOME` (default `/var/cache/agw-testenv`).
    pub home: PathBuf,
    /// The admin kubeconfig of the test cluster.
    pub kubeconfig: PathBuf,
    /// `PATH` with `$AGW_TESTENV_HOME/bin` (kubectl 1.33, helm) first.
    pub path: String,
    /// Where the workspace binaries are (`E2E_BIN_DIR`, default `target/release`).
    pub bin_dir: PathBuf,
    /// Logs of every process the tests start (`E2E_ARTIFACTS`, default `target/e2e`).
    pub artifacts: PathBuf,
}

/// The process-wide [`Env`].
pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let workspace = manifest.parent().expect("e2e/ has a parent").to_path_buf();
        let home = PathBuf::from(
            std::env::var("AGW_TESTENV_HOME").unwrap_or_else(|_| "/var/cache/agw-testenv".into()),
        );
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(|p| workspace.join(p))
            .unwrap_or_else(|_| workspace.join("target"));
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        // relative paths are relative to the workspace (cargo runs tests in the package dir)
        let bin_dir = std::env::var("E2E_BIN_DIR")
            .map(|p| workspace.join(p))
            .unwrap_or_else(|_| target.join(profile));
        let artifacts = std::env::var("E2E_ARTIFACTS")
            .map(|p| workspace.join(p))
            .unwrap_or_else(|_| target.join("e2e"));
        fs::create_dir_all(artifacts.join("pids")).expect("create the artifacts dir");
        let path = format!(
            "{}:{}",
            home.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Env {
            testenv_dir: manifest.join("testenv"),
            kubeconfig: home.join("state/admin.kubeconfig"),
            workspace,
            home,
            path,
            bin_dir,
            artifacts,
        }
    })
}

/// A command with the test cluster's `KUBECONFIG` and `PATH`.
pub fn cmd(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let e = env();
    let mut c = Command::new(program);
    c.env("KUBECONFIG", &e.kubeconfig).env("PATH", &e.path);
    for var in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        c.env_remove(var);
    }
    c
}

/// Prints a line with the UTC wall-clock time, to line up with the operator's and the cluster's logs
/// (the tests run with `--nocapture`).
pub fn say(msg: impl AsRef<str>) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let (s, ms) = (now.as_secs() % 86_400, now.subsec_millis());
    eprintln!(
        "[e2e {:02}:{:02}:{:02}.{ms:03}] {}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        msg.as_ref()
    );
}

// ------------------------------------------------------------------------------------------ kubectl

/// The outcome of a command.
#[derive(Debug, Clone)]
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// stdout, or a panic that shows the command and both streams.
    pub fn expect_ok(self, what: &str) -> String {
        assert!(
            self.ok,
            "{what} failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self.stdout
    }
}

/// Runs `c` (with `stdin`) to completion.
pub fn run(mut c: Command, stdin: Option<&str>) -> Out {
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let input = input.to_owned();
        // a writer thread: a large manifest must not deadlock against a full stdout pipe
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {c:?}: {e}"));
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `kubectl ARGS` (with `stdin`), whatever the outcome.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Out {
    let mut c = cmd("kubectl");
    c.args(args);
    run(c, stdin)
}

/// `kubectl ARGS`, which must succeed; returns stdout.
pub fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    kubectl(args, stdin).expect_ok(&format!("kubectl {}", args.join(" ")))
}

/// Like [`kubectl_ok`], but echoes the command and its output the way a user sees them.
pub fn kubectl_show(args: &[&str], stdin: Option<&str>) -> String {
    eprintln!("$ kubectl {}", args.join(" "));
    let out = kubectl_ok(args, stdin);
    eprint!("{out}");
    out
}

/// `kubectl ARGS -o json`, parsed.
pub fn kubectl_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = kubectl_ok(&all, None);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {all:?}: bad JSON: {e}"))
}

/// `kubectl get ARGS -o json`, or `None` when the object does not exist.
pub fn get_json(args: &[&str]) -> Option<Value> {
    let mut all = vec!["get"];
    all.extend(args);
    all.extend(["-o", "json", "--ignore-not-found"]);
    let out = kubectl_ok(&all, None);
    if out.trim().is_empty() {
        None
    } else {
        Some(serde_json::from_str(&out).expect("kubectl JSON"))
    }
}

/// `kubectl apply -f-` with `yaml`.
pub fn apply(yaml: &str) -> String {
    kubectl_ok(&["apply", "-f-"], Some(yaml))
}

/// A condition of an object's `status.conditions` (or of `conditions`, for a route's parent
/// status): `(status, reason, message)`.
pub fn condition(obj: &Value, kind: &str) -> Option<(String, String, String)> {
    obj.pointer("/status/conditions")
        .or_else(|| obj.get("conditions"))?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

/// All `data` values of a ConfigMap, concatenated, with a compressed config
/// (`binaryData["config.yaml.gz"]`) decompressed (empty when it does not exist).
pub fn configmap_text(ns: &str, name: &str) -> String {
    use agentgateway_crds::proxy_config::delivery::{
        CONFIG_MAP_GZIP_KEY, MAX_CONFIG_BYTES, decode_gzip,
    };
    use base64::Engine as _;
    let Some(cm) = get_json(&["configmap", name, "-n", ns]) else {
        return String::new();
    };
    let mut text = String::new();
    if let Some(data) = cm["data"].as_object() {
        for (k, v) in data {
            let _ = writeln!(text, "# {k}\n{}", v.as_str().unwrap_or_default());
        }
    }
    if let Some(encoded) = cm["binaryData"][CONFIG_MAP_GZIP_KEY].as_str() {
        let yaml = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| e.to_string())
            .and_then(|bytes| decode_gzip(&bytes, MAX_CONFIG_BYTES).map_err(|e| e.to_string()));
        match yaml {
            Ok(yaml) => {
                let _ = writeln!(text, "# {CONFIG_MAP_GZIP_KEY}\n{yaml}");
            }
            Err(e) => {
                let _ = writeln!(text, "# {CONFIG_MAP_GZIP_KEY}: unreadable: {e}");
            }
        }
    }
    text
}

// ------------------------------------------------------------------------------------------ waiting

/// Polls `f` every `every` until it returns `Ok`, or panics after `timeout` with the last `Err`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                assert!(
                    start.elapsed() < timeout,
                    "timed out after {timeout:?} waiting for {what}; last state: {last}"
                );
            }
        }
        std::thread::sleep(every);
    }
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> u128 {
    d.as_millis()
}

// ------------------------------------------------------------------------------------------ processes

/// A process started by a test: SIGTERM (then SIGKILL) when dropped. Output goes to
/// `<artifacts>/<name>.log`.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Child,
    pidfile: PathBuf,
    exited: bool,
    /// Log length when this process started (the log file is appended to).
    start_offset: usize,
}

fn proc_start_time(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(") ")?.1;
    after.split(' ').nth(19).map(str::to_owned)
}

impl Proc {
    /// Starts `c` in its own process group, output appended to `<artifacts>/<name>.log`.
    pub fn spawn(name: &str, mut c: Command) -> Proc {
        let e = env();
        let log = e.artifacts.join(format!("{name}.log"));
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|err| panic!("open {}: {err}", log.display()));
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let _ = writeln!(f, "=== started at unix time {}: {c:?}", now.as_secs());
        let start_offset = f
            .metadata()
            .map_or(0, |m| usize::try_from(m.len()).unwrap_or(0));
        let err = f.try_clone().expect("clone log handle");
        c.stdin(Stdio::null())
            .stdout(Stdio::from(f))
            .stderr(Stdio::from(err))
            .process_group(0);
        let child = c
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name} ({c:?}): {err}"));
        let pid = child.id();
        let pidfile = e.artifacts.join("pids").join(pid.to_string());
        let start = proc_start_time(pid).unwrap_or_default();
        let _ = fs::write(&pidfile, format!("{pid} {start} {name}\n"));
        Proc {
            name: name.to_owned(),
            log,
            child,
            pidfile,
            exited: false,
            start_offset,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs (reaps it when it exited).
    pub fn running(&mut self) -> bool {
        if self.exited {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(_)) | Err(_) => {
                self.exited = true;
                let _ = fs::remove_file(&self.pidfile);
                false
            }
            Ok(None) => true,
        }
    }

    fn signal(&self, sig: Signal) {
        let pid = i32::try_from(self.child.id()).expect("pid fits i32");
        let _ = kill(Pid::from_raw(pid), sig);
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        if !self.running() {
            return;
        }
        self.signal(Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < grace {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill_now();
    }

    /// SIGKILL: no chance to clean up (e.g. to release a Lease).
    pub fn kill_now(&mut self) {
        if !self.running() {
            return;
        }
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
        self.exited = true;
        let _ = fs::remove_file(&self.pidfile);
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Waits until this process logged `needle`; panics if it exits first.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) {
        self.wait_log_from(needle, self.start_offset, timeout);
    }

    /// This process's own log (without earlier runs appended to the same file).
    pub fn own_log(&self) -> String {
        self.log_text()
            .get(self.start_offset..)
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the log (since `from` bytes) contains `needle`; panics if the process exits.
    pub fn wait_log_from(&mut self, needle: &str, from: usize, timeout: Duration) {
        let name = self.name.clone();
        wait_for(
            &format!("{needle:?} in the log of {name}"),
            timeout,
            Duration::from_millis(100),
            || {
                let text = self.log_text();
                if text.get(from..).is_some_and(|t| t.contains(needle)) {
                    return Ok(());
                }
                if !self.running() {
                    panic!("{name} exited; log:\n{}", self.log_tail(40));
                }
                Err(self.log_tail(5))
            },
        );
    }

    /// The log's current length, to wait for lines written after now.
    pub fn log_len(&self) -> usize {
        fs::metadata(&self.log).map_or(0, |m| usize::try_from(m.len()).unwrap_or(usize::MAX))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// A free TCP port on the host's loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Whether something accepts connections on `127.0.0.1:port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .is_ok()
}

/// Whether the host port can be bound (nobody listens on it).
pub fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

// ------------------------------------------------------------------------------------------ test LLM servers

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

// ------------------------------------------------------------------------------------------ HTTP

/// A response read by [`http`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        body = &body[eol + 2..];
        if size == 0 || body.len() < size {
            out.extend_from_slice(&body[..size.min(body.len())]);
            break;
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
    out
}

/// A minimal HTTP/1.1 client (one request per connection) for `127.0.0.1:port`.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> io::Result<HttpResponse> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let host = format!("localhost:{port}");
    http_to(addr, &host, method, path, body, timeout)
}

/// [`http`] to any address (from a thread in the cluster's netns: a pod IP or a Service ClusterIP),
/// with `host` as the Host header.
pub fn http_to(
    addr: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> io::Result<HttpResponse> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    // Read until the message is complete (Content-Length, or the last chunk), not until EOF:
    // `kubectl port-forward` closes the local side of a connection up to a second after the pod's
    // side closed it, which would add that second to every latency measured.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let mut head: Option<Head> = None;
    loop {
        if head.is_none()
            && let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n")
        {
            head = Some(parse_head(&raw[..split])?);
            if let Some((_, status, _)) = &head
                && (*status == 204 || *status == 304 || method == "HEAD")
            {
                break;
            }
        }
        if let Some((split, _, headers)) = &head
            && message_complete(&raw[split + 4..], headers)
        {
            break;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let Some((split, status, headers)) = head else {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("no complete response head ({} bytes)", raw.len()),
        ));
    };
    let mut body = raw[split + 4..].to_vec();
    if is_chunked(&headers) {
        body = dechunk(&body);
    }
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// (length of the head, status, headers) of a response head (without the blank line).
type Head = (usize, u16, Vec<(String, String)>);

/// Parses a response head (without the blank line).
fn parse_head(raw: &[u8]) -> io::Result<Head> {
    let head = String::from_utf8_lossy(raw).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad head: {head}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok((raw.len(), status, headers))
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"))
}

/// Whether `body` holds the whole message body the headers announce.
fn message_complete(body: &[u8], headers: &[(String, String)]) -> bool {
    if is_chunked(headers) {
        return body.ends_with(b"0\r\n\r\n")
            && (body.len() == 5 || body[..body.len() - 5].ends_with(b"\r\n"));
    }
    headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .is_some_and(|len| body.len() >= len)
}

/// The tutorial's request body: empty model, `Reply with exactly: <reply>`.
pub fn chat_body(reply: &str) -> String {
    serde_json::json!({
        "model": "",
        "messages": [{"role": "user", "content": format!("Reply with exactly: {reply}")}]
    })
    .to_string()
}

/// POSTs the tutorial's chat completion to `path` through the port-forward.
pub fn chat(port: u16, path: &str, reply: &str) -> io::Result<HttpResponse> {
    http(
        port,
        "POST",
        path,
        Some(&chat_body(reply)),
        Duration::from_secs(10),
    )
}

/// Checks a chat.completion the way the tutorial describes it; `Err` says what is wrong.
pub fn check_completion(r: &HttpResponse, model: &str, content: &str) -> Result<Value, String> {
    let summary = || {
        format!(
            "HTTP {} {}",
            r.status,
            r.body.chars().take(400).collect::<String>()
        )
    };
    if r.status != 200 {
        return Err(summary());
    }
    let v = r.json().ok_or_else(summary)?;
    let ok = v["object"] == "chat.completion"
        && v["model"] == model
        && v["choices"][0]["message"]["content"] == content
        && v["choices"][0]["finish_reason"].is_string()
        && v["usage"]["prompt_tokens"].is_u64()
        && v["usage"]["completion_tokens"].is_u64()
        && v["usage"]["total_tokens"].is_u64();
    if ok { Ok(v) } else { Err(summary()) }
}

/// Checks an OpenAI-shaped error `{"error": {"message", "type", "code"}}` with `status`.
pub fn check_openai_error(r: &HttpResponse, status: u16) -> Result<Value, String> {
    let v = r.json();
    match v {
        Some(v)
            if r.status == status
                && v["error"]["message"].is_string()
                && v["error"]["type"].is_string()
                && !v["error"]["code"].is_null() =>
        {
            Ok(v)
        }
        _ => Err(format!(
            "HTTP {} {}",
            r.status,
            r.body.chars().take(400).collect::<String>()
        )),
    }
}

// ------------------------------------------------------------------------------------------ port-forward

/// `kubectl port-forward <target> -n <ns> <local>:<remote>` from the host; restarted by
/// [`PortForward::ensure`] when the pod behind it went away.
pub struct PortForward {
    proc: Proc,
    pub local_port: u16,
    args: Vec<String>,
}

impl PortForward {
    pub fn start(ns: &str, target: &str, local_port: u16, remote_port: u16) -> PortForward {
        let args: Vec<String> = vec![
            "port-forward".into(),
            target.into(),
            "-n".into(),
            ns.into(),
            format!("{local_port}:{remote_port}"),
        ];
        let proc = Self::spawn(&args, local_port);
        PortForward {
            proc,
            local_port,
            args,
        }
    }

    fn spawn(args: &[String], local_port: u16) -> Proc {
        eprintln!("$ kubectl {} &", args.join(" "));
        let mut c = cmd("kubectl");
        c.args(args);
        let mut p = Proc::spawn(&format!("port-forward-{local_port}"), c);
        // "Forwarding from 127.0.0.1:8080 -> 80"
        p.wait_log(
            &format!("Forwarding from 127.0.0.1:{local_port}"),
            Duration::from_secs(30),
        );
        p
    }

    /// Restarts the port-forward if it exited (kubectl exits when its pod goes away).
    pub fn ensure(&mut self) {
        if !self.proc.running() {
            say(format!(
                "port-forward {} exited; restarting it. Its log:\n{}",
                self.local_port,
                self.proc.log_tail(5)
            ));
            self.proc = Self::spawn(&self.args, self.local_port);
        }
    }

    /// [`chat`] through this port-forward, restarting it first if needed.
    pub fn chat(&mut self, path: &str, reply: &str) -> io::Result<HttpResponse> {
        self.ensure();
        chat(self.local_port, path, reply)
    }
}

// ------------------------------------------------------------------------------------------ cluster setup

/// Applies our CRD and the Gateway API CRDs (server-side) and waits until they are established.
pub fn install_crds() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let e = env();
        let ours = e
            .workspace
            .join("crds/agentgateway.dev_agentgatewaybackends.yaml");
        let gw = e.workspace.join("e2e/crds/gateway-api.yaml");
        for f in [&ours, &gw] {
            kubectl_ok(
                &[
                    "apply",
                    "--server-side",
                    "--force-conflicts",
                    "--field-manager",
                    "agentgateway-e2e",
                    "-f",
                    &f.display().to_string(),
                ],
                None,
            );
        }
        kubectl_ok(
            &[
                "wait",
                "--for",
                "condition=established",
                "--timeout=60s",
                "crd/agentgatewaybackends.agentgateway.dev",
                "crd/gatewayclasses.gateway.networking.k8s.io",
                "crd/gateways.gateway.networking.k8s.io",
                "crd/httproutes.gateway.networking.k8s.io",
                "crd/referencegrants.gateway.networking.k8s.io",
            ],
            None,
        );
    });
}

/// What the Helm chart will create: the namespace, the GatewayClass `agentgateway` and the
/// default Gateway `agentgateway-proxy` (listener `http`, port 80).
pub const PLATFORM_YAML: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: agentgateway-system
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: agentgateway
spec:
  controllerName: agentgateway.dev/agentgateway
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: agentgateway-proxy
  namespace: agentgateway-system
spec:
  gatewayClassName: agentgateway
  listeners:
  - name: http
    port: 80
    protocol: HTTP
"#;

/// Applies [`PLATFORM_YAML`].
pub fn ensure_platform() {
    apply(PLATFORM_YAML);
}

/// A Gateway of class `agentgateway` with one HTTP listener on port 80.
pub fn gateway_yaml(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: {name}\n  \
         namespace: {ns}\n  labels:\n    {TEST_LABEL}: \"true\"\nspec:\n  gatewayClassName: agentgateway\n  \
         listeners:\n  - name: http\n    port: 80\n    protocol: HTTP\n"
    )
}

/// Creates a namespace labelled as a test namespace.
pub fn create_test_namespace(ns: &str) {
    apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    {TEST_LABEL}: \"true\"\n"
    ));
}

/// `kubectl` arguments that delete a namespace and wait until it is gone.
fn delete_namespace_args(ns: &str) -> [&str; 6] {
    [
        "delete",
        "namespace",
        ns,
        "--ignore-not-found",
        "--wait=true",
        "--timeout=120s",
    ]
}

/// Deletes a namespace and waits until it is gone.
pub fn delete_namespace(ns: &str) {
    kubectl_ok(&delete_namespace_args(ns), None);
}

/// The objects the operator creates for Gateway `gateway`, as `(kind, name)`.
pub fn proxy_objects(gateway: &str) -> Vec<(String, String)> {
    vec![
        ("deployment".into(), gateway.into()),
        ("service".into(), gateway.into()),
        ("serviceaccount".into(), gateway.into()),
        ("role".into(), gateway.into()),
        ("rolebinding".into(), gateway.into()),
        ("configmap".into(), format!("{gateway}-config")),
        ("secret".into(), format!("{gateway}-credentials")),
    ]
}

/// Waits until none of `objects` (`(kind, name)`) exists in `ns`.
pub fn wait_gone(what: &str, ns: &str, objects: &[(String, String)], timeout: Duration) {
    wait_for(what, timeout, Duration::from_millis(250), || {
        let left: Vec<String> = objects
            .iter()
            .filter(|(kind, name)| get_json(&[kind, name, "-n", ns]).is_some())
            .map(|(kind, name)| format!("{kind}/{name}"))
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still there: {left:?}"))
        }
    });
}

/// The resident memory of process `pid` in MiB (`VmRSS`).
pub fn rss_mib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// A Deployment's `spec.selector.matchLabels` as a `-l` selector (`k=v,k2=v2`).
pub fn label_selector(deployment: &serde_json::Value) -> String {
    deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// Waits until the proxy Deployment of `gateway` exists and all its replicas are fresh and Ready
/// (no old pod is still terminating, so a port-forward lands on a live pod).
pub fn wait_proxy_ready(ns: &str, gateway: &str, timeout: Duration) -> Duration {
    let start = Instant::now();
    let dep = wait_for(
        &format!("Deployment {ns}/{gateway} (created by the operator)"),
        timeout,
        Duration::from_millis(250),
        || get_json(&["deployment", gateway, "-n", ns]).ok_or_else(|| "not found".to_owned()),
    );
    let selector = label_selector(&dep);
    let left = timeout
        .saturating_sub(start.elapsed())
        .max(Duration::from_secs(5));
    wait_for(
        &format!("Deployment {ns}/{gateway} Ready"),
        left,
        Duration::from_millis(250),
        || {
            let dep = get_json(&["deployment", gateway, "-n", ns])
                .ok_or_else(|| "deployment gone".to_owned())?;
            let want = dep["spec"]["replicas"].as_u64().unwrap_or(1);
            let st = &dep["status"];
            let rolled = dep["metadata"]["generation"] == st["observedGeneration"]
                && st["updatedReplicas"].as_u64() == Some(want)
                && st["readyReplicas"].as_u64() == Some(want)
                && st["replicas"].as_u64() == Some(want);
            let pods = kubectl_json(&["get", "pods", "-n", ns, "-l", &selector]);
            let pods = pods["items"].as_array().cloned().unwrap_or_default();
            let ready = pods
                .iter()
                .filter(|p| {
                    p["metadata"]["deletionTimestamp"].is_null()
                        && p["status"]["conditions"].as_array().is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        })
                })
                .count();
            if rolled && pods.len() as u64 == want && ready as u64 == want {
                Ok(())
            } else {
                let phases: Vec<String> = pods
                    .iter()
                    .map(|p| {
                        let waiting =
                            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                                .as_str()
                                .unwrap_or("");
                        format!(
                            "{} {} {waiting}",
                            p["metadata"]["name"].as_str().unwrap_or("?"),
                            p["status"]["phase"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                Err(format!("status {st}; pods {phases:?}"))
            }
        },
    );
    start.elapsed()
}

// ------------------------------------------------------------------------------------------ operator

/// How to start an operator process.
#[derive(Clone, Debug)]
pub struct OperatorOpts {
    /// Log file name and identity (`POD_NAME`/`HOSTNAME` are set to it).
    pub name: String,
    pub leader_election: bool,
    pub lease_namespace: String,
    /// `--proxy-replicas`: replicas of every proxy Deployment the operator creates (default 1).
    pub proxy_replicas: u32,
}

impl OperatorOpts {
    pub fn new(name: &str) -> OperatorOpts {
        OperatorOpts {
            name: name.to_owned(),
            leader_election: false,
            lease_namespace: NS.to_owned(),
            proxy_replicas: 1,
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

// ------------------------------------------------------------------------------------------ fixture

/// What every scenario needs: CRDs, the platform objects, the tutorial's model server inside the
/// netns at `host.docker.internal:8090`, the operator, and a Ready proxy Deployment.
/// Dropping it stops the operator and the model server.
pub struct Fixture {
    // field order = drop order
    pub operator: Operator,
    pub mock: Proc,
}

impl Fixture {
    pub fn up(test: &str) -> Fixture {
        Fixture::up_with(OperatorOpts::new(&format!("{test}-operator")), test)
    }

    /// [`Fixture::up`] with an operator started from `opts`.
    pub fn up_with(opts: OperatorOpts, test: &str) -> Fixture {
        let t0 = Instant::now();
        install_crds();
        ensure_extra_hosts();
        ensure_platform();
        let mock = start_mock_llm(
            &format!("{test}-mock-llm"),
            &format!("{NODE_IP}:{MOCK_PORT}"),
            MODEL,
            &[],
        );
        let operator = Operator::start(opts);
        let took = wait_proxy_ready(NS, GATEWAY, Duration::from_secs(180));
        say(format!(
            "fixture up in {} ms (proxy Deployment Ready after {} ms)",
            ms(t0.elapsed()),
            ms(took)
        ));
        Fixture { operator, mock }
    }
}

/// `kind/namespace/name` → resourceVersion of every object of `kinds` in `ns` (or cluster-wide
/// kinds when `ns` is empty).
pub fn resource_versions(kinds: &str, ns: &str) -> BTreeMap<String, String> {
    let list = if ns.is_empty() {
        kubectl_json(&["get", kinds])
    } else {
        kubectl_json(&["get", kinds, "-n", ns])
    };
    let mut out = BTreeMap::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let key = format!(
            "{}/{}/{}",
            item["kind"].as_str().unwrap_or("?"),
            item["metadata"]["namespace"].as_str().unwrap_or(""),
            item["metadata"]["name"].as_str().unwrap_or("?")
        );
        out.insert(
            key,
            item["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
    }
    out
}

/// The keys whose value differs between two [`resource_versions`] snapshots (incl. added/removed).
pub fn changed(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {:?} -> {:?}", a.get(k), b.get(k)))
        .collect()
}

/// Reads a file relative to the workspace.
pub fn workspace_file(rel: impl AsRef<Path>) -> String {
    let p = env().workspace.join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

// ------------------------------------------------------------------------------------------ tutorial

/// One `## ` section of the tutorial with the shell commands of its ```sh blocks.
#[derive(Debug, Clone)]
pub struct TutorialStep {
    pub title: String,
    pub commands: Vec<String>,
}

/// The tutorial the scenario replays: `E2E_TUTORIAL`, default `e2e/tutorial.md` (a verbatim copy of
/// the user tutorial).
pub fn tutorial_path() -> PathBuf {
    std::env::var("E2E_TUTORIAL")
        .map(PathBuf::from)
        .unwrap_or_else(|_| env().workspace.join("e2e/tutorial.md"))
}

/// Splits the tutorial into steps and each ```sh block into commands: a heredoc (`<<'TAG'`) runs to
/// its `TAG` line, a single-quoted argument spanning lines (curl's `-d '{ ... }'`) to its closing quote.
pub fn parse_tutorial(md: &str) -> Vec<TutorialStep> {
    let mut steps: Vec<TutorialStep> = Vec::new();
    let mut lines = md.lines();
    while let Some(line) = lines.next() {
        if let Some(title) = line.strip_prefix("## ") {
            steps.push(TutorialStep {
                title: title.trim().to_owned(),
                commands: Vec::new(),
            });
            continue;
        }
        if line.trim() != "```sh" {
            continue;
        }
        let mut block = Vec::new();
        for l in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            block.push(l);
        }
        let commands = split_commands(&block);
        if let Some(step) = steps.last_mut() {
            step.commands.extend(commands);
        }
    }
    steps
}

fn split_commands(block: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < block.len() {
        let line = block[i];
        i += 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let mut command = line.to_owned();
        if let Some(pos) = line.find("<<'") {
            let tag = line[pos + 3..].split('\'').next().unwrap_or("").to_owned();
            while i < block.len() {
                command.push('\n');
                command.push_str(block[i]);
                i += 1;
                if block[i - 1] == tag {
                    break;
                }
            }
        } else {
            while command.matches('\'').count() % 2 == 1 && i < block.len() {
                command.push('\n');
                command.push_str(block[i]);
                i += 1;
            }
        }
        out.push(command);
    }
    out
}

/// Runs a tutorial command with bash (the test cluster's `KUBECONFIG`, kubectl first on `PATH`).
pub fn sh(command: &str) -> Out {
    let mut c = cmd("bash");
    c.args(["-c", command]);
    run(c, None)
}

/// Like [`sh`], echoing the command and its output.
pub fn sh_show(command: &str) -> Out {
    eprintln!("$ {command}");
    let out = sh(command);
    eprint!("{}", out.stdout);
    if !out.stderr.is_empty() {
        eprint!("{}", out.stderr);
    }
    out
}

/// Starts a tutorial command that ends with `&` as a guarded background process.
pub fn sh_background(name: &str, command: &str) -> Proc {
    let command = command.trim().trim_end_matches('&').trim();
    eprintln!("$ {command} &");
    let mut c = cmd("bash");
    c.args(["-c", &format!("exec {command}")]);
    Proc::spawn(name, c)
}

/// Runs `kubectl ARGS` when dropped (cleanup that also happens when a test panics).
pub struct Cleanup(Vec<Vec<String>>);

impl Cleanup {
    pub fn new() -> Cleanup {
        Cleanup(Vec::new())
    }
    /// Adds a `kubectl` invocation (run in the order added).
    pub fn kubectl(&mut self, args: &[&str]) {
        self.0.push(args.iter().map(|s| (*s).to_owned()).collect());
    }
    /// Adds the deletion of namespace `ns`, waiting until it is gone.
    pub fn namespace(&mut self, ns: &str) {
        self.kubectl(&delete_namespace_args(ns));
    }
}

impl Default for Cleanup {
    fn default() -> Self {
        Cleanup::new()
    }
}

/// Writes what the cluster looked like when a test failed (before its clean-up runs) to
/// `<artifacts>/failure-state-<unix time>.txt`; `run.sh` includes it in the diagnostics.
pub fn dump_failure_state() {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let file = env().artifacts.join(format!("failure-state-{now}.txt"));
    let mut text = String::new();
    for args in [
        &[
            "get",
            "gatewayclasses,gateways,httproutes,agentgatewaybackends",
            "-A",
            "-o",
            "yaml",
        ][..],
        &[
            "get",
            "deployments,pods,configmaps,secrets,leases",
            "-A",
            "-o",
            "wide",
        ][..],
        &[
            "get",
            "configmaps",
            "-A",
            "-o",
            "yaml",
            "--field-selector",
            "metadata.name!=kube-root-ca.crt",
        ][..],
        &["get", "events", "-A", "--sort-by=.lastTimestamp"][..],
    ] {
        let out = kubectl(args, None);
        let _ = writeln!(
            text,
            "===== kubectl {}\n{}{}",
            args.join(" "),
            out.stdout,
            out.stderr
        );
    }
    match fs::write(&file, text) {
        Ok(()) => say(format!("cluster state at the failure: {}", file.display())),
        Err(e) => say(format!("cannot write {}: {e}", file.display())),
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            dump_failure_state();
        }
        for args in &self.0 {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = kubectl(&a, None);
            if !out.ok {
                say(format!(
                    "cleanup: kubectl {} failed: {}",
                    a.join(" "),
                    out.stderr.trim()
                ));
            }
        }
    }
}

/// Prints a figure for the report; `run.sh` collects the `FIGURE` lines into its summary.
pub fn figure(scenario: &str, text: impl AsRef<str>) {
    let line = format!("FIGURE [{scenario}] {}", text.as_ref());
    say(&line);
    let _ = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env().artifacts.join("figures.txt"))
        .and_then(|mut f| writeln!(f, "{line}"));
}
