//! Snapshots: the store and the queues saved to a JSON file, and loaded back at start.
//!
//! The writer is a thread of its own (file I/O blocks, and it must not hold up a runtime worker).
//! It saves every `snapshot.interval_ms` if anything was written since the last save, when `SAVE`
//! asks, and once more at shutdown. A save writes a temporary file beside the snapshot and renames
//! it over, so a crash mid-write leaves the previous snapshot whole; a failed write is retried
//! with backoff. The thread takes part in hot patching: it waits at `blocking_at_safe_point` and
//! passes a `safe_point` after each save.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hotreload_runtime::hot;
use serde::{Deserialize, Serialize};
use tracing::{debug, error, info};

use crate::queue::SavedQueues;
use crate::service::Depot;
use crate::store::kv::SavedEntry;
use crate::util::backoff::retry_blocking;
use crate::util::clock::{unix_millis, Millis};

/// The snapshot file's format; a file of another format is not loaded.
const FORMAT: u32 = 1;

/// What a snapshot file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: u32,
    pub taken_at: Millis,
    pub keys: Vec<SavedEntry>,
    pub queues: SavedQueues,
}

/// What a restore loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    pub keys: usize,
    pub jobs: usize,
}

/// Why a snapshot could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a snapshot: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} has format {found}; this server reads format {FORMAT}")]
    Format { path: PathBuf, found: u32 },
}

/// The store and the queues as they are now.
#[hot]
#[tracing::instrument(level = "debug", skip(depot))]
pub fn capture(depot: &Depot, now: Millis) -> Snapshot {
    Snapshot {
        format: FORMAT,
        taken_at: now,
        keys: depot.store.export(now),
        queues: depot.queues.export(),
    }
}

/// Writes `snapshot` to `path` through a temporary file and a rename.
pub fn write(path: &Path, snapshot: &Snapshot) -> Result<u64, SnapshotError> {
    let io = |action, source| SnapshotError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
    }
    let temporary = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(snapshot).expect("a snapshot always serialises");
    let mut file = std::fs::File::create(&temporary).map_err(|e| io("creating", e))?;
    file.write_all(&bytes).map_err(|e| io("writing", e))?;
    file.sync_all().map_err(|e| io("syncing", e))?;
    std::fs::rename(&temporary, path).map_err(|e| io("renaming onto", e))?;
    Ok(bytes.len() as u64)
}

/// Reads the snapshot at `path`; `None` if there is none.
pub fn read(path: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SnapshotError::Io {
                action: "reading",
                path: path.to_owned(),
                source,
            })
        }
    };
    let snapshot: Snapshot =
        serde_json::from_slice(&bytes).map_err(|source| SnapshotError::Corrupt {
            path: path.to_owned(),
            source,
        })?;
    if snapshot.format != FORMAT {
        return Err(SnapshotError::Format {
            path: path.to_owned(),
            found: snapshot.format,
        });
    }
    Ok(Some(snapshot))
}

/// Loads the snapshot at `path` into an empty depot.
pub fn restore(depot: &Depot, path: &Path) -> Result<Option<Restored>, SnapshotError> {
    let Some(snapshot) = read(path)? else {
        return Ok(None);
    };
    let keys = depot.store.import(snapshot.keys, unix_millis());
    let jobs = depot.queues.import(snapshot.queues);
    Ok(Some(Restored { keys, jobs }))
}

/// The snapshot writer thread.
pub struct Writer {
    stopping: Arc<AtomicBool>,
    wake: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Writer {
    /// Starts the thread; `SAVE` reaches it through the depot.
    pub fn start(depot: Arc<Depot>, path: PathBuf) -> Writer {
        let (wake, requests) = mpsc::channel();
        depot.set_save_requests(wake.clone());
        let stopping = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stopping);
        let thread = std::thread::Builder::new()
            .name("depot-snapshot".to_owned())
            .spawn(move || writer_loop(&depot, &path, &requests, &stop_flag))
            .expect("starting the snapshot thread");
        Writer {
            stopping,
            wake,
            thread,
        }
    }

    /// Asks for a last save and waits for the thread to end.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::Release);
        let _ = self.wake.send(());
        if self.thread.join().is_err() {
            error!("the snapshot thread panicked");
        }
    }
}

fn writer_loop(depot: &Depot, path: &Path, requests: &mpsc::Receiver<()>, stopping: &AtomicBool) {
    let interval = Duration::from_millis(depot.config.snapshot.interval_ms);
    loop {
        let woken = hotreload_runtime::blocking_at_safe_point(|| requests.recv_timeout(interval));
        let stop = stopping.load(Ordering::Acquire);
        let asked = woken.is_ok();
        if woken == Err(mpsc::RecvTimeoutError::Disconnected) {
            return;
        }
        // Count the writes before the capture: one that lands during it is saved next time.
        let dirty = depot.take_dirty();
        if asked || stop || dirty > 0 {
            save(depot, path);
        }
        if stop {
            return;
        }
        hotreload_runtime::safe_point();
    }
}

/// One save, retried with backoff; failures are logged, the server keeps serving.
fn save(depot: &Depot, path: &Path) {
    let started = Instant::now();
    let snapshot = capture(depot, unix_millis());
    let policy = depot.config.snapshot.retry;
    let written = retry_blocking(
        &policy,
        |attempt| {
            if attempt > 0 {
                debug!(attempt, "retrying the snapshot");
            }
            write(path, &snapshot)
        },
        |error| matches!(error, SnapshotError::Io { .. }),
        |delay| hotreload_runtime::blocking_at_safe_point(|| std::thread::sleep(delay)),
    );
    match written {
        Ok(bytes) => info!(
            path = %path.display(),
            bytes,
            keys = snapshot.keys.len(),
            jobs = snapshot.queues.jobs.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot saved"
        ),
        Err(error) => error!(%error, "snapshot failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::queue::PushOptions;
    use crate::store::{SetCondition, Value};

    fn scratch(name: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!("depot-snapshot-test-{}", std::process::id()))
            .join(name)
    }

    fn depot() -> Depot {
        let mut config = Config::default();
        config.snapshot.path = None;
        Depot::new(config)
    }

    #[test]
    fn a_snapshot_round_trips() {
        let depot = depot();
        let now = unix_millis();
        depot
            .store
            .set("k", Value::from_input("v"), None, SetCondition::Always, now);
        depot
            .queues
            .push("q", "job".into(), &PushOptions::default(), now)
            .unwrap();
        let path = scratch("round-trip.json");
        write(&path, &capture(&depot, now)).unwrap();
        let restored = depot_from(&path);
        assert_eq!(restored, Restored { keys: 1, jobs: 1 });
        assert!(!path.with_extension("json.tmp").exists());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn missing_corrupt_and_foreign_files() {
        assert!(read(&scratch("missing.json")).unwrap().is_none());
        let path = scratch("corrupt.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(read(&path), Err(SnapshotError::Corrupt { .. })));
        let mut snapshot = capture(&depot(), 0);
        snapshot.format = 99;
        std::fs::write(&path, serde_json::to_vec(&snapshot).unwrap()).unwrap();
        let error = read(&path).unwrap_err();
        assert!(error.to_string().contains("format 99"), "{error}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_writer_saves_on_request_and_at_stop() {
        let path = scratch("writer.json");
        let depot = Arc::new(depot());
        let writer = Writer::start(Arc::clone(&depot), path.clone());
        depot.store.set(
            "saved",
            Value::Int(1),
            None,
            SetCondition::Always,
            unix_millis(),
        );
        assert!(depot.request_save());
        writer.stop();
        let snapshot = read(&path).unwrap().expect("a snapshot was written");
        assert_eq!(snapshot.keys[0].0, "saved");
        std::fs::remove_file(&path).unwrap();
    }

    fn depot_from(path: &Path) -> Restored {
        let mut config = Config::default();
        config.snapshot.path = None;
        restore(&Depot::new(config), path)
            .unwrap()
            .expect("a snapshot")
    }
}
