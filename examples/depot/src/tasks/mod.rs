//! Background work: the sweeper (expired keys, due and timed-out jobs, idle rate buckets), the
//! metrics reporter, and the snapshot writer.

pub mod reporter;
pub mod snapshot;
pub mod sweeper;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::service::Depot;

/// The running background tasks.
pub struct Background {
    tasks: Vec<JoinHandle<()>>,
    snapshot: Option<snapshot::Writer>,
}

/// Starts every background task; they stop when `stop` turns true.
pub fn spawn_all(depot: &Arc<Depot>, stop: watch::Receiver<bool>) -> Background {
    let mut tasks = vec![tokio::spawn(sweeper::run(Arc::clone(depot), stop.clone()))];
    if depot.config.metrics_interval_ms > 0 {
        tasks.push(tokio::spawn(reporter::run(Arc::clone(depot), stop)));
    }
    let snapshot = depot
        .config
        .snapshot
        .path
        .clone()
        .map(|path| snapshot::Writer::start(Arc::clone(depot), path));
    Background { tasks, snapshot }
}

impl Background {
    /// Waits for the tasks to stop, then writes the last snapshot.
    pub async fn finish(self) {
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(writer) = self.snapshot {
            // The writer thread blocks on the file: wait for it off the runtime's workers.
            let _ = tokio::task::spawn_blocking(move || writer.stop()).await;
        }
    }
}
