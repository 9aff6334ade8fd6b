//! `cargo hotpatch agent`: the fleet agent of one host ([`crate::fleet::agent`]).

use std::time::Duration;

use anyhow::bail;

use crate::cli::AgentArgs;
use crate::fleet::agent::{self, AgentConfig};
use crate::fleet::host_name;

/// Runs the agent until it is killed.
pub fn agent(args: AgentArgs) -> anyhow::Result<()> {
    if args.target.is_empty() && args.socket_dir.is_none() {
        bail!("the agent serves no process: name their control sockets with `--target SOCKET` or a directory of them with `--socket-dir DIR`");
    }
    if !(args.poll > 0.0 && args.poll.is_finite()) {
        bail!("`--poll {}` is not a positive number of seconds", args.poll);
    }
    let host = args.host.unwrap_or_else(host_name);
    if host.is_empty() || host.contains('/') {
        bail!("`{host}` cannot name a host in the fleet's keys: give `--host NAME` without `/`");
    }
    let targets = args
        .target
        .iter()
        .map(|t| super::absolute(t))
        .collect::<anyhow::Result<_>>()?;
    let cache_dir = args.cache_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("hotpatch-agent-{}-{host}", args.fleet.service))
    });
    agent::run(&AgentConfig {
        endpoints: args.fleet.etcd,
        service: args.fleet.service,
        host,
        targets,
        socket_dir: args.socket_dir,
        lease_ttl: args.lease_ttl.max(2),
        poll: Duration::from_secs_f64(args.poll),
        cache_dir,
        allow_entry_redirects: args.allow_entry_redirects,
    })
}
