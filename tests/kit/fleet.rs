//! Fleet agents under test: `cargo hotpatch agent` processes serving some control sockets as one
//! host of a service, with their stderr kept for the failure messages.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use crate::process::collect_output;
use crate::Fixture;

/// The agent's lease and poll interval in the tests: a dead agent's reports go within seconds.
const LEASE_TTL: &str = "3";
const POLL: &str = "0.2";

/// One running agent, killed when dropped.
pub struct FleetAgent {
    child: Child,
    stderr: Arc<Mutex<String>>,
    pub host: String,
    etcd: String,
    service: String,
    targets: Vec<PathBuf>,
}

impl FleetAgent {
    /// Starts `agent --host HOST --target ...` for `service` on `etcd`; a target that is a
    /// directory is passed as `--socket-dir`.
    pub fn start(
        fixture: &Fixture,
        etcd: &str,
        service: &str,
        host: &str,
        targets: &[PathBuf],
    ) -> Self {
        let (child, stderr) = spawn(fixture, etcd, service, host, targets);
        FleetAgent {
            child,
            stderr,
            host: host.to_owned(),
            etcd: etcd.to_owned(),
            service: service.to_owned(),
            targets: targets.to_vec(),
        }
    }

    /// Kills it (no chance to clean up, as a crashed host), then starts it again.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again after [`FleetAgent::kill`].
    pub fn restart(&mut self, fixture: &Fixture) {
        self.kill();
        let (child, stderr) = spawn(
            fixture,
            &self.etcd,
            &self.service,
            &self.host,
            &self.targets,
        );
        self.child = child;
        self.stderr = stderr;
    }

    /// What it printed on stderr (since its last start).
    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn spawn(
    fixture: &Fixture,
    etcd: &str,
    service: &str,
    host: &str,
    targets: &[PathBuf],
) -> (Child, Arc<Mutex<String>>) {
    let mut args = vec![
        "agent",
        "--etcd",
        etcd,
        "--service",
        service,
        "--host",
        host,
        "--lease-ttl",
        LEASE_TTL,
        "--poll",
        POLL,
        // The gateway's patches change functions that are not `#[hot]` too.
        "--allow-entry-redirects",
    ];
    for target in targets {
        let flag = if target.is_dir() {
            "--socket-dir"
        } else {
            "--target"
        };
        args.extend([flag, target.to_str().unwrap()]);
    }
    let cache = fixture.root().join(format!("agent-cache-{host}"));
    args.extend(["--cache-dir", cache.to_str().unwrap()]);
    let mut child = fixture
        .tool_command(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting `cargo hotpatch agent`");
    let stderr = collect_output(child.stderr.take().unwrap());
    (child, stderr)
}

impl Drop for FleetAgent {
    fn drop(&mut self) {
        self.kill();
    }
}
