//! The tutorial's commands, and shell helpers.

use super::*;

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
