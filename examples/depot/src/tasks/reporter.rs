//! Logs the metrics every `metrics_interval_ms`, as a service's periodic health line.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::info;

use crate::service::Depot;

pub async fn run(depot: Arc<Depot>, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(depot.config.metrics_interval_ms);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut last_commands = 0;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        let metrics = depot.metrics.snapshot();
        let per_second = (metrics.commands - last_commands) as f64 / period.as_secs_f64();
        last_commands = metrics.commands;
        info!(
            connections = metrics.connections_open,
            commands = metrics.commands,
            per_second = format_args!("{per_second:.1}"),
            errors = metrics.errors,
            p99_us = metrics.latency_p99_us,
            keys = depot.store.len(),
            pending_jobs = depot.queues.pending(),
            "metrics"
        );
    }
}
