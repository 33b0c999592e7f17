//! Paths and settings, from the environment.

use super::*;

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
