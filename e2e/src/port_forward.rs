//! `kubectl port-forward` to the proxy, restarted when it dies.

use super::*;

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
