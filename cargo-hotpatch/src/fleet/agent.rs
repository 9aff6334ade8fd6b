//! `cargo hotpatch agent`: on one host, keeps the processes it serves at their build's desired
//! state and reports each one under a lease of its own, so a host that dies disappears.
//!
//! The loop is level-triggered: a change under the desired keys (an etcd watch that resumes after
//! its last revision when etcd comes back) or the poll interval wakes it, and it then reads the
//! whole desired state and every target's status again. A process that starts later or restarts
//! is found by the next poll; one that no longer answers has its report deleted.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use hotreload_runtime::wire::protocol::StatusReport;

use super::converge::{active_stack, bring, PatchCache};
use super::etcd::{Etcd, KeptLease};
use super::keys::{decode, encode, Desired, Keys, ProcessReport};
use crate::remote::client;
use crate::shell::{error_line, status, warning};

/// What an agent serves, and how.
pub struct AgentConfig {
    pub endpoints: Vec<String>,
    pub service: String,
    pub host: String,
    /// Control sockets named on the command line.
    pub targets: Vec<PathBuf>,
    /// A directory whose `*.sock` files are control sockets too, read at every pass.
    pub socket_dir: Option<PathBuf>,
    pub lease_ttl: i64,
    pub poll: Duration,
    pub cache_dir: PathBuf,
    /// Whether the processes may apply patches with entry redirects (`--allow-entry-redirects`).
    pub allow_entry_redirects: bool,
}

/// One agent's memory between passes.
struct Agent<'a> {
    config: &'a AgentConfig,
    keys: Keys,
    etcd: &'a Etcd,
    /// The report last written for each process (`host/pid`).
    written: HashMap<String, ProcessReport>,
    /// The desired generation each process failed to reach, and why: not tried again until the
    /// desired state changes.
    failed: HashMap<String, (u64, String)>,
}

/// Runs the agent until it is killed.
pub fn run(config: &AgentConfig) -> anyhow::Result<()> {
    let keys = Keys::new(&config.service)?;
    let etcd = Etcd::connect(&config.endpoints)?;
    let changes = etcd.watch_prefix(&keys.desired_prefix());
    let mut lease = grant(&etcd, config.lease_ttl);
    status(
        "Agent",
        format!(
            "serving service `{}` as host `{}` through etcd at {}",
            config.service,
            config.host,
            etcd.endpoints()
        ),
    );
    let mut agent = Agent {
        config,
        keys,
        etcd: &etcd,
        written: HashMap::new(),
        failed: HashMap::new(),
    };
    let mut unreachable = false;
    loop {
        if lease.is_lost() {
            warning("etcd let the agent's lease expire: reporting again under a new one");
            lease = grant(&etcd, config.lease_ttl);
            agent.written.clear();
        }
        match agent.pass(&lease) {
            Ok(()) if unreachable => {
                status("Reconnected", format!("to etcd at {}", etcd.endpoints()));
                unreachable = false;
            }
            Ok(()) => {}
            // Expired while etcd was away and not restored: its keys are gone.
            Err(error) if format!("{error:#}").contains("lease not found") => {
                warning("etcd lost the agent's lease: reporting again under a new one");
                lease = grant(&etcd, config.lease_ttl);
                agent.written.clear();
            }
            Err(error) if !unreachable => {
                error_line(format!("{error:#}; the processes keep serving what they run, and the agent tries again"));
                unreachable = true;
            }
            Err(_) => {}
        }
        // A change or the poll interval, then everything the change left queued.
        let _ = changes.recv_timeout(config.poll);
        while changes.try_recv().is_ok() {}
    }
}

/// A kept lease, waiting for etcd as long as it takes.
fn grant(etcd: &Etcd, ttl: i64) -> KeptLease {
    let mut said = false;
    loop {
        match etcd.lease(ttl) {
            Ok(lease) => return lease,
            Err(error) if !said => {
                error_line(format!("{error:#}; waiting for etcd"));
                said = true;
            }
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

impl Agent<'_> {
    /// One pass over every target.
    fn pass(&mut self, lease: &KeptLease) -> anyhow::Result<()> {
        let mut desired: HashMap<String, Option<Desired>> = HashMap::new();
        let mut seen = BTreeSet::new();
        for socket in self.sockets() {
            // Not running (yet), or gone: its report goes below.
            let Ok(process) = client::status(&socket) else {
                continue;
            };
            let name = format!("{}/{}", self.config.host, process.pid);
            if !desired.contains_key(&process.build_id) {
                let key = self.keys.desired(&process.build_id);
                let record = match self.etcd.get(&key)? {
                    Some(bytes) => Some(decode::<Desired>(&key, &bytes)?),
                    None => None,
                };
                desired.insert(process.build_id.clone(), record);
            }
            let report = self.converge(
                &socket,
                &name,
                &process,
                desired[&process.build_id].as_ref(),
            );
            if self.written.get(&name) != Some(&report) {
                self.etcd
                    .put(&self.keys.report(&name), encode(&report), Some(lease.id))?;
                self.written.insert(name.clone(), report);
            }
            seen.insert(name);
        }
        let gone: Vec<String> = self
            .written
            .keys()
            .filter(|name| !seen.contains(*name))
            .cloned()
            .collect();
        for name in gone {
            status(
                "Gone",
                format!("{name} no longer answers: its report is removed"),
            );
            self.etcd.delete(&self.keys.report(&name))?;
            self.written.remove(&name);
            self.failed.remove(&name);
        }
        Ok(())
    }

    /// Brings one process to its desired state (unless it failed to reach this generation
    /// already); its report.
    fn converge(
        &mut self,
        socket: &std::path::Path,
        name: &str,
        process: &StatusReport,
        desired: Option<&Desired>,
    ) -> ProcessReport {
        let mut report = ProcessReport {
            process: name.to_owned(),
            socket: socket.display().to_string(),
            build_id: process.build_id.clone(),
            patch: active_stack(process).pop(),
            generation: 0,
            error: None,
        };
        let Some(desired) = desired else {
            return report;
        };
        report.generation = desired.generation;
        if let Some((generation, why)) = self.failed.get(name) {
            if *generation == desired.generation {
                report.error = Some(why.clone());
                return report;
            }
        }
        let cache = PatchCache {
            etcd: self.etcd,
            keys: &self.keys,
            dir: self.config.cache_dir.clone(),
            allow_entry_redirects: self.config.allow_entry_redirects,
        };
        match bring(&cache, socket, name, process, desired.wanted_by(name)) {
            Ok(top) => report.patch = top,
            Err(error) => {
                let why = format!("{error:#}");
                error_line(format!("{name}: {why}"));
                self.failed
                    .insert(name.to_owned(), (desired.generation, why.clone()));
                report.error = Some(why);
                // What it runs now, as far as it can still tell.
                if let Ok(now) = client::status(socket) {
                    report.patch = active_stack(&now).pop();
                }
            }
        }
        report
    }

    /// The targets named, then the sockets in the socket directory.
    fn sockets(&self) -> Vec<PathBuf> {
        let mut sockets = self.config.targets.clone();
        if let Some(dir) = &self.config.socket_dir {
            let found = std::fs::read_dir(dir)
                .with_context(|| format!("reading the socket directory {}", dir.display()));
            match found {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|e| e == "sock"))
                        .filter(|p| !sockets.contains(p))
                        .collect();
                    found.sort();
                    sockets.extend(found);
                }
                Err(error) => warning(format!("{error:#}")),
            }
        }
        sockets
    }
}
