//! etcd's v3 API as the fleet commands use it: blocking calls, each bounded in time, over the
//! `etcd-client` crate driven by a runtime of its own; leases kept alive and prefixes watched
//! on that runtime, each reconnecting by itself when etcd goes away and comes back.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use etcd_client::{
    Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};

use crate::shell::status;

/// How long one request may take before etcd counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// The pause between two tries of a watch or keep-alive stream that broke.
const RECONNECT_PAUSE: Duration = Duration::from_millis(300);

/// A connection to an etcd cluster.
pub struct Etcd {
    runtime: tokio::runtime::Runtime,
    client: Client,
    endpoints: String,
}

impl Etcd {
    /// Connects to `endpoints` (`http://127.0.0.1:2379`, ...). Connecting is lazy: an
    /// unreachable etcd shows at the first request.
    pub fn connect(endpoints: &[String]) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etcd")
            .enable_all()
            .build()
            .context("starting the runtime of the etcd client")?;
        let names = endpoints.join(",");
        let client = runtime
            .block_on(Client::connect(endpoints, None))
            .with_context(|| format!("connecting to etcd at {names}"))?;
        Ok(Etcd {
            runtime,
            client,
            endpoints: names,
        })
    }

    /// The endpoints, for messages.
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// Runs one request against a timeout; `what` names it in the error.
    fn call<T, F: Future<Output = Result<T, etcd_client::Error>>>(
        &self,
        what: impl FnOnce() -> String,
        request: impl FnOnce(Client) -> F,
    ) -> anyhow::Result<T> {
        let client = self.client.clone();
        match self
            .runtime
            .block_on(async { tokio::time::timeout(REQUEST_TIMEOUT, request(client)).await })
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                Err(anyhow!(error).context(format!("etcd at {}: {}", self.endpoints, what())))
            }
            Err(_) => Err(anyhow!(
                "etcd at {} did not answer within {REQUEST_TIMEOUT:?}: {}",
                self.endpoints,
                what()
            )),
        }
    }

    /// The value at `key`.
    pub fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let response = self.call(
            || format!("reading {key}"),
            |mut c| async move { c.get(key, None).await },
        )?;
        Ok(response.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// Every key under `prefix` and its value, in key order.
    pub fn get_prefix(&self, prefix: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let response = self.call(
            || format!("reading {prefix}*"),
            |mut c| async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await },
        )?;
        Ok(response
            .kvs()
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    kv.value().to_vec(),
                )
            })
            .collect())
    }

    /// Writes `value` at `key`, attached to `lease` if given (deleted when it expires).
    pub fn put(&self, key: &str, value: Vec<u8>, lease: Option<i64>) -> anyhow::Result<()> {
        let options = lease.map(|id| PutOptions::new().with_lease(id));
        self.call(
            || format!("writing {key}"),
            |mut c| async move { c.put(key, value, options).await },
        )?;
        Ok(())
    }

    pub fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.call(
            || format!("deleting {key}"),
            |mut c| async move { c.delete(key, None).await },
        )?;
        Ok(())
    }

    /// Writes `value` at `key` under `lease` only if `key` does not exist, in one transaction;
    /// otherwise returns the value there (`Err`).
    pub fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: i64,
    ) -> anyhow::Result<Result<(), Vec<u8>>> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                value,
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let response = self.call(
            || format!("creating {key}"),
            |mut c| async move { c.txn(txn).await },
        )?;
        if response.succeeded() {
            return Ok(Ok(()));
        }
        let held = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        });
        Ok(Err(held.unwrap_or_default()))
    }

    /// A lease of `ttl` seconds, kept alive until dropped (then revoked, best effort).
    pub fn lease(&self, ttl: i64) -> anyhow::Result<KeptLease> {
        let granted = self.call(
            || format!("granting a lease of {ttl} s"),
            |mut c| async move { c.lease_grant(ttl, None).await },
        )?;
        let lost = Arc::new(AtomicBool::new(false));
        let task = self.runtime.spawn(keep_alive(
            self.client.clone(),
            granted.id(),
            Duration::from_secs(ttl.max(1) as u64),
            Arc::clone(&lost),
        ));
        Ok(KeptLease {
            id: granted.id(),
            lost,
            task,
        })
    }

    /// Revokes `lease`: its keys go at once.
    pub fn revoke(&self, lease: KeptLease) -> anyhow::Result<()> {
        lease.task.abort();
        self.call(
            || format!("revoking lease {:x}", lease.id),
            |mut c| async move { c.lease_revoke(lease.id).await },
        )?;
        Ok(())
    }

    /// A signal for every change under `prefix`, for as long as the receiver lives. The watch
    /// resumes after the last revision it saw when etcd comes back; one signal is sent on every
    /// (re)connection too, since changes may have been missed (compacted away) meanwhile.
    pub fn watch_prefix(&self, prefix: &str) -> Receiver<()> {
        let (changed, receiver) = mpsc::channel();
        self.runtime
            .spawn(watch(self.client.clone(), prefix.to_owned(), changed));
        receiver
    }

    /// Runs `op` until it succeeds or `within` has passed; says once that etcd is unreachable.
    pub fn retry<T>(
        &self,
        within: Duration,
        mut op: impl FnMut(&Etcd) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let until = Instant::now() + within;
        let mut said = false;
        loop {
            match op(self) {
                Ok(value) => {
                    if said {
                        status("Reconnected", format!("to etcd at {}", self.endpoints));
                    }
                    return Ok(value);
                }
                Err(error) if Instant::now() >= until => {
                    return Err(error.context(format!(
                        "etcd at {} was unreachable for {within:?}",
                        self.endpoints
                    )))
                }
                Err(error) => {
                    if !said {
                        status(
                            "Waiting",
                            format!("{error:#}; retrying for up to {within:?}"),
                        );
                        said = true;
                    }
                    std::thread::sleep(RECONNECT_PAUSE);
                }
            }
        }
    }
}

/// A lease kept alive by a task of the client's runtime.
pub struct KeptLease {
    pub id: i64,
    lost: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl KeptLease {
    /// Whether etcd let the lease expire (its keys are gone): a new one is needed.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }
}

impl Drop for KeptLease {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn keep_alive(mut client: Client, id: i64, ttl: Duration, lost: Arc<AtomicBool>) {
    loop {
        let stream = tokio::time::timeout(REQUEST_TIMEOUT, client.lease_keep_alive(id)).await;
        if let Ok(Ok((mut keeper, mut responses))) = stream {
            loop {
                if keeper.keep_alive().await.is_err() {
                    break;
                }
                match tokio::time::timeout(REQUEST_TIMEOUT, responses.message()).await {
                    Ok(Ok(Some(response))) if response.ttl() <= 0 => {
                        lost.store(true, Ordering::Relaxed);
                        return;
                    }
                    Ok(Ok(Some(_))) => tokio::time::sleep(ttl / 3).await,
                    _ => break,
                }
            }
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}

async fn watch(mut client: Client, prefix: String, changed: Sender<()>) {
    let mut next_revision = 0;
    loop {
        let mut options = WatchOptions::new().with_prefix();
        if next_revision > 0 {
            options = options.with_start_revision(next_revision);
        }
        let stream = tokio::time::timeout(
            REQUEST_TIMEOUT,
            client.watch(prefix.as_str(), Some(options)),
        )
        .await;
        if let Ok(Ok(mut stream)) = stream {
            if changed.send(()).is_err() {
                return;
            }
            while let Ok(Some(response)) = stream.message().await {
                if response.compact_revision() > 0 || response.canceled() {
                    // The revisions after ours are compacted away: resync from now on.
                    next_revision = 0;
                    break;
                }
                if let Some(header) = response.header() {
                    next_revision = header.revision() + 1;
                }
                if !response.events().is_empty() && changed.send(()).is_err() {
                    return;
                }
            }
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}
