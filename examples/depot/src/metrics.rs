//! What the server counts: connections, commands by kind, errors and latencies. Counters are
//! atomics, so recording never waits; the reporter logs a [`MetricsSnapshot`] periodically and
//! `STATS` returns one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::protocol::CommandKind;

/// Upper bounds (microseconds) of the latency buckets; the last bucket takes the rest.
const LATENCY_BOUNDS_US: [u64; 8] = [50, 100, 250, 500, 1_000, 5_000, 25_000, 100_000];

/// A histogram of durations in fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    total_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn record(&self, elapsed: Duration) {
        let micros = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        let bucket = LATENCY_BOUNDS_US
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.total_us.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The smallest bucket bound under which at least `quantile` of the samples fall.
    pub fn quantile_us(&self, quantile: f64) -> Option<u64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let wanted = (quantile.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return Some(LATENCY_BOUNDS_US.get(index).copied().unwrap_or(u64::MAX));
            }
        }
        None
    }

    pub fn mean_us(&self) -> Option<u64> {
        let count = self.count.load(Ordering::Relaxed);
        (count > 0).then(|| self.total_us.load(Ordering::Relaxed) / count)
    }
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
    commands: [AtomicU64; CommandKind::ALL.len()],
    errors: AtomicU64,
    rate_limited: AtomicU64,
    latency: Histogram,
}

/// A reading of every counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricsSnapshot {
    pub connections_open: u64,
    pub connections_total: u64,
    pub connections_refused: u64,
    pub commands: u64,
    pub errors: u64,
    pub rate_limited: u64,
    pub by_command: Vec<(String, u64)>,
    pub latency_mean_us: Option<u64>,
    pub latency_p99_us: Option<u64>,
}

impl Metrics {
    pub fn new() -> Self {
        Metrics::default()
    }

    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// One command of `kind` took `elapsed` and did (`ok`) or did not succeed.
    pub fn command(&self, kind: CommandKind, elapsed: Duration, ok: bool) {
        self.commands[kind as usize].fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.latency.record(elapsed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let by_command: Vec<(String, u64)> = CommandKind::ALL
            .iter()
            .map(|kind| {
                let count = self.commands[*kind as usize].load(Ordering::Relaxed);
                (kind.name().to_owned(), count)
            })
            .filter(|(_, count)| *count > 0)
            .collect();
        MetricsSnapshot {
            connections_open: self.connections_open.load(Ordering::Relaxed),
            connections_total: self.connections_total.load(Ordering::Relaxed),
            connections_refused: self.connections_refused.load(Ordering::Relaxed),
            commands: by_command.iter().map(|(_, count)| count).sum(),
            errors: self.errors.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            by_command,
            latency_mean_us: self.latency.mean_us(),
            latency_p99_us: self.latency.quantile_us(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets() {
        let histogram = Histogram::default();
        assert_eq!(histogram.quantile_us(0.5), None);
        for _ in 0..98 {
            histogram.record(Duration::from_micros(40));
        }
        histogram.record(Duration::from_micros(900));
        histogram.record(Duration::from_secs(1));
        assert_eq!(histogram.quantile_us(0.5), Some(50));
        assert_eq!(histogram.quantile_us(0.99), Some(1_000));
        assert_eq!(histogram.quantile_us(1.0), Some(u64::MAX));
    }

    #[test]
    fn a_snapshot_counts_commands_by_kind() {
        let metrics = Metrics::new();
        metrics.connection_opened();
        metrics.command(CommandKind::Get, Duration::from_micros(10), true);
        metrics.command(CommandKind::Get, Duration::from_micros(10), false);
        metrics.command(CommandKind::Push, Duration::from_micros(10), true);
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.commands, 3);
        assert_eq!(snapshot.errors, 1);
        assert_eq!(snapshot.connections_open, 1);
        assert!(snapshot.by_command.contains(&("get".to_owned(), 2)));
    }
}
