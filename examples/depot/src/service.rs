//! The server's shared state: the store, the queues, the topics, the metrics and the limits, one
//! `Arc<Depot>` handed to every connection and background task.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use hotreload_runtime::hot;
use serde::Serialize;

use crate::config::Config;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::protocol::Reply;
use crate::pubsub::PubSub;
use crate::queue::Queues;
use crate::session::LIFETIME;
use crate::store::{CacheStats, KvStore};
use crate::util::clock::{unix_millis, Millis};
use crate::util::rate::RateLimiter;

/// Everything connections share.
#[derive(Debug)]
pub struct Depot {
    pub config: Config,
    pub store: KvStore,
    pub queues: Queues,
    pub pubsub: PubSub,
    pub metrics: Metrics,
    pub limiter: RateLimiter<IpAddr>,
    pub started_at: Millis,
    next_connection: AtomicU64,
    /// Writes since the last snapshot: the snapshot writer skips a save when nothing changed.
    dirty: AtomicU64,
    /// Asks the snapshot writer to save now (`SAVE`); none when snapshots are off.
    save_requests: Mutex<Option<mpsc::Sender<()>>>,
}

/// What `INFO` answers.
#[derive(Debug, Serialize)]
pub struct Info {
    pub version: &'static str,
    pub uptime_ms: u64,
    pub keys: usize,
    pub store: CacheStats,
    pub queues: Vec<String>,
    pub pending_jobs: usize,
    pub topics: usize,
    pub published: u64,
    pub sessions_opened: u64,
    pub snapshot: Option<String>,
}

impl Depot {
    pub fn new(config: Config) -> Self {
        Depot {
            store: KvStore::new(config.store.capacity, config.store.default_ttl()),
            queues: Queues::new(config.queue.clone()),
            pubsub: PubSub::new(),
            metrics: Metrics::new(),
            limiter: RateLimiter::new(config.rate),
            started_at: unix_millis(),
            next_connection: AtomicU64::new(1),
            dirty: AtomicU64::new(0),
            save_requests: Mutex::new(None),
            config,
        }
    }

    /// A number for a new connection.
    pub fn connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    pub fn mark_dirty(&self) {
        self.dirty.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes since the last call.
    pub fn take_dirty(&self) -> u64 {
        self.dirty.swap(0, Ordering::Relaxed)
    }

    /// Where `SAVE` sends its request.
    pub fn set_save_requests(&self, sender: mpsc::Sender<()>) {
        *self.save_requests.lock().unwrap_or_else(|p| p.into_inner()) = Some(sender);
    }

    /// Asks for a snapshot now; false if snapshots are off.
    pub fn request_save(&self) -> bool {
        let requests = self.save_requests.lock().unwrap_or_else(|p| p.into_inner());
        requests
            .as_ref()
            .is_some_and(|sender| sender.send(()).is_ok())
    }

    pub fn uptime(&self, now: Millis) -> Duration {
        Duration::from_millis(now.saturating_sub(self.started_at))
    }
}

#[hot]
impl Depot {
    /// The answer to `INFO`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub fn info(&self, now: Millis) -> Reply {
        let sessions_opened = LIFETIME
            .read()
            .map_or(0, |lifetime| lifetime.sessions_opened);
        let info = Info {
            version: env!("CARGO_PKG_VERSION"),
            uptime_ms: self.uptime(now).as_millis() as u64,
            keys: self.store.len(),
            store: self.store.stats(),
            queues: self.queues.names(),
            pending_jobs: self.queues.pending(),
            topics: self.pubsub.list().len(),
            published: self.pubsub.published(),
            sessions_opened,
            snapshot: self
                .config
                .snapshot
                .path
                .as_ref()
                .map(|path| path.display().to_string()),
        };
        Reply::doc(&info)
    }

    /// The answer to `STATS`: the metrics now.
    #[tracing::instrument(level = "debug", skip(self))]
    pub fn stats(&self) -> Reply {
        let snapshot: MetricsSnapshot = self.metrics.snapshot();
        Reply::doc(&snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lists_what_is_held() {
        let depot = Depot::new(Config::default());
        depot.store.set(
            "k",
            crate::store::Value::Int(1),
            None,
            Default::default(),
            unix_millis(),
        );
        let Reply::Doc(info) = depot.info(unix_millis()) else {
            panic!("INFO answers a document");
        };
        assert_eq!(info["keys"], 1);
        assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
        assert!(!depot.request_save(), "no snapshot writer yet");
        let (sender, receiver) = mpsc::channel();
        depot.set_save_requests(sender);
        assert!(depot.request_save());
        assert_eq!(receiver.try_recv(), Ok(()));
    }
}
