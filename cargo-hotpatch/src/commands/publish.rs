//! `cargo hotpatch publish`: a fleet rollout through etcd ([`crate::fleet::publish`]).

use std::time::Duration;

use anyhow::bail;

use crate::cli::PublishArgs;
use crate::exit::Exit;
use crate::fleet::publish::{self, PublishConfig};
use crate::fleet::rollout::Waits;

/// Runs the publish; its exit: rolled back if a batch failed, a failure if etcd stayed away.
pub fn publish(args: PublishArgs) -> anyhow::Result<Exit> {
    for (flag, secs) in [("--pause", args.pause), ("--timeout", args.timeout)] {
        if !(secs >= 0.0 && secs.is_finite()) {
            bail!("`{flag} {secs}` is not a number of seconds");
        }
    }
    publish::publish(PublishConfig {
        endpoints: args.fleet.etcd,
        service: args.fleet.service,
        file: args.file,
        rollback: args.rollback,
        batches: args.batches,
        waits: Waits {
            timeout: Duration::from_secs_f64(args.timeout),
            health: args.health,
            pause: Duration::from_secs_f64(args.pause),
            format: args.message_format,
        },
    })
}
