//! The sweeper: every `sweep_interval_ms`, removes expired keys, makes due jobs ready, gives
//! back jobs whose reservation timed out, and forgets idle rate-limit buckets and empty topics.

use std::sync::Arc;
use std::time::Instant;

use hotreload_runtime::hot;
use serde::Serialize;
use tokio::sync::watch;
use tracing::debug;

use crate::queue::queues::QueueSweep;
use crate::service::Depot;
use crate::util::clock::{unix_millis, Millis};

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub expired_keys: usize,
    pub jobs: QueueSweep,
    pub rate_buckets: usize,
    pub topics: usize,
}

impl SweepReport {
    pub fn is_empty(&self) -> bool {
        *self == SweepReport::default()
    }
}

/// One sweep at `now`.
#[hot]
#[tracing::instrument(level = "trace", skip(depot))]
pub fn sweep(depot: &Depot, now: Millis) -> SweepReport {
    let report = SweepReport {
        expired_keys: depot.store.sweep(now, depot.config.store.sweep_batch),
        jobs: depot.queues.sweep(now),
        rate_buckets: depot.limiter.prune(Instant::now()),
        topics: depot.pubsub.prune(),
    };
    if report.jobs.promoted + report.jobs.timed_out + report.expired_keys > 0 {
        depot.mark_dirty();
    }
    if !report.is_empty() {
        debug!(?report, "swept");
    }
    report
}

/// Sweeps until `stop` turns true.
pub async fn run(depot: Arc<Depot>, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(depot.config.sweep_interval());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                sweep(&depot, unix_millis());
            }
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::queue::PushOptions;
    use crate::store::{SetCondition, Value};
    use std::time::Duration;

    #[test]
    fn a_sweep_expires_keys_and_promotes_jobs() {
        let mut config = Config::default();
        config.snapshot.path = None;
        let depot = Depot::new(config);
        let now = 1_000_000;
        depot.store.set(
            "brief",
            Value::Int(1),
            Some(Duration::from_millis(5)),
            SetCondition::Always,
            now,
        );
        let options = PushOptions {
            delay_ms: 10,
            ..PushOptions::default()
        };
        depot
            .queues
            .push("q", "later".into(), &options, now)
            .unwrap();
        assert_eq!(sweep(&depot, now + 1), SweepReport::default());
        let report = sweep(&depot, now + 10);
        assert_eq!(report.expired_keys, 1);
        assert_eq!(report.jobs.promoted, 1);
        assert_eq!(depot.queues.stats("q").ready, 1);
        assert!(depot.take_dirty() > 0);
    }
}
