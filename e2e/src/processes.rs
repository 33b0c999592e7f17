//! Processes the tests start, killed when their guard drops.

use super::*;

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
