//! Accepting connections and running the background tasks, until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{error, info, warn, Instrument};

use crate::config::Config;
use crate::connection::Connection;
use crate::service::Depot;
use crate::tasks;

/// How long connections get to finish after shutdown is asked for.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// A bound server, not yet accepting.
pub struct Server {
    depot: Arc<Depot>,
    listener: TcpListener,
}

impl Server {
    /// Loads the last snapshot (if any) and binds the listening socket.
    pub async fn bind(config: Config) -> std::io::Result<Server> {
        let depot = Arc::new(Depot::new(config));
        if let Some(path) = &depot.config.snapshot.path {
            match tasks::snapshot::restore(&depot, path) {
                Ok(Some(restored)) => info!(
                    path = %path.display(),
                    keys = restored.keys,
                    jobs = restored.jobs,
                    "restored the last snapshot"
                ),
                Ok(None) => info!(path = %path.display(), "no snapshot yet"),
                Err(error) => warn!(%error, "the snapshot could not be restored; starting empty"),
            }
        }
        let listener = TcpListener::bind(&depot.config.listen).await?;
        Ok(Server { depot, listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn depot(&self) -> Arc<Depot> {
        Arc::clone(&self.depot)
    }

    /// Serves until `shutdown` completes, then lets connections finish (a few seconds at most)
    /// and writes a last snapshot.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let Server { depot, listener } = self;
        let (stop, stopped) = watch::channel(false);
        let background = tasks::spawn_all(&depot, stopped.clone());
        let permits = Arc::new(Semaphore::new(depot.config.max_connections));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            // Out of file descriptors, say: back off instead of spinning.
                            error!(%error, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        depot.metrics.connection_refused();
                        warn!(%peer, "too many connections; refused");
                        drop(stream);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let connection = Connection::new(Arc::clone(&depot), stream, peer, stopped.clone());
                    connections.spawn(async move {
                        let _permit = permit;
                        if let Err(error) = connection.serve().await {
                            tracing::debug!(%peer, %error, "connection ended with an error");
                        }
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                () = &mut shutdown => break,
            }
        }
        info!(open = connections.len(), "shutting down");
        let _ = stop.send(true);
        drain(&mut connections).await;
        background.finish().await;
        Ok(())
    }
}

/// Waits for the connections to close, up to [`DRAIN_TIME`]; aborts the rest.
async fn drain(connections: &mut JoinSet<()>) {
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIME, drained.in_current_span())
        .await
        .is_err()
    {
        warn!(
            left = connections.len(),
            "connections still open; closing them"
        );
        connections.abort_all();
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("Ctrl-C"),
        () = terminate => info!("SIGTERM"),
    }
}
