//! One client connection, as a small state machine:
//!
//! ```text
//!   Serving ── RESERVE .. WAIT ──► Waiting ── job or deadline ──► Serving
//!      │  ▲                                                          │
//!      │  └── UNSUBSCRIBE (last) ── Subscribed ◄── SUBSCRIBE ────────┘
//!      └── QUIT / EOF / idle / shutdown ──► Closing
//! ```
//!
//! While serving or subscribed it reads request lines and forwards published messages; while
//! waiting for a job it reads nothing (like a blocking pop in Redis), but still leaves on
//! shutdown. Each request locks the session, calls the `#[hot]` handler and unlocks before any
//! await, so a patch never waits for a slow client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotreload_runtime::state::Handle;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument};

use crate::error::DepotError;
use crate::handlers::{self, Outcome};
use crate::protocol::{Reply, Request, Syntax};
use crate::pubsub::Message;
use crate::service::Depot;
use crate::session::{self, Session};
use crate::util::clock::unix_millis;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Serving,
    Subscribed,
    Waiting,
    Closing,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    Quit,
    PeerClosed,
    Idle,
    Shutdown,
    LineTooLong,
}

/// Messages waiting to be written to a subscriber before publishers are made to drop some.
const OUTBOX: usize = 1_024;

/// A connection being served.
pub struct Connection {
    depot: Arc<Depot>,
    session: Handle<Session>,
    id: u64,
    peer: SocketAddr,
    reader: BufReader<OwnedReadHalf>,
    writer: BufWriter<OwnedWriteHalf>,
    phase: Phase,
    /// Forwarding tasks, one per subscribed topic, all writing into `outbox`.
    forwarders: HashMap<String, JoinHandle<()>>,
    outbox_sender: mpsc::Sender<Reply>,
    outbox: mpsc::Receiver<Reply>,
    shutdown: watch::Receiver<bool>,
    line: String,
}

impl Connection {
    pub fn new(
        depot: Arc<Depot>,
        stream: TcpStream,
        peer: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let id = depot.connection_id();
        let needs_auth = depot.config.auth_token.is_some();
        let session = session::open(id, peer.to_string(), needs_auth, unix_millis());
        let (reader, writer) = stream.into_split();
        let (outbox_sender, outbox) = mpsc::channel(OUTBOX);
        Connection {
            depot,
            session,
            id,
            peer,
            reader: BufReader::new(reader),
            writer: BufWriter::new(writer),
            phase: Phase::Serving,
            forwarders: HashMap::new(),
            outbox_sender,
            outbox,
            shutdown,
            line: String::new(),
        }
    }

    /// Serves the connection until it ends; says why it ended.
    pub async fn serve(mut self) -> std::io::Result<CloseReason> {
        let span = tracing::info_span!("connection", id = self.id, peer = %self.peer);
        async move {
            self.depot.metrics.connection_opened();
            debug!("connected");
            let result = self.run().await;
            self.finish();
            self.depot.metrics.connection_closed();
            match &result {
                Ok(reason) => debug!(?reason, "disconnected"),
                Err(error) => info!(%error, "connection failed"),
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn run(&mut self) -> std::io::Result<CloseReason> {
        loop {
            if let Some(reason) = self.read_or_forward().await? {
                self.phase = Phase::Closing;
                self.writer.flush().await?;
                return Ok(reason);
            }
        }
    }

    /// Waits for the next request line, a message to forward, the idle deadline or shutdown;
    /// handles whichever comes first. `Some` when the connection is to close.
    async fn read_or_forward(&mut self) -> std::io::Result<Option<CloseReason>> {
        let idle = self.depot.config.idle_timeout();
        // Subscribers are quiet by design: only an idle request-response client is dropped.
        let idle = idle.filter(|_| self.phase == Phase::Serving);
        let max_line = self.depot.config.max_line_bytes;
        self.line.clear();
        let mut reading = (&mut self.reader).take(max_line as u64 + 1);
        tokio::select! {
            read = reading.read_line(&mut self.line) => {
                match read? {
                    0 => Ok(Some(CloseReason::PeerClosed)),
                    _ if self.line.len() > max_line => {
                        let error = Reply::Error {
                            code: crate::error::ErrorCode::Syntax,
                            message: format!("request longer than {max_line} bytes"),
                        };
                        self.write(&error, Syntax::Text, None).await?;
                        Ok(Some(CloseReason::LineTooLong))
                    }
                    _ => {
                        let line = std::mem::take(&mut self.line);
                        let result = self.handle_line(&line).await;
                        self.line = line;
                        result
                    }
                }
            }
            Some(message) = self.outbox.recv() => {
                self.write(&message, Syntax::Text, None).await?;
                Ok(None)
            }
            _ = sleep_or_forever(idle) => Ok(Some(CloseReason::Idle)),
            _ = self.shutdown.changed() => {
                self.write(&Reply::Bye, Syntax::Text, None).await?;
                Ok(Some(CloseReason::Shutdown))
            }
        }
    }

    /// One request line: parse, rate-limit, run the handler, act on its outcome.
    async fn handle_line(&mut self, line: &str) -> std::io::Result<Option<CloseReason>> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        let request = match Request::parse(line) {
            Ok(request) => request,
            Err((syntax, error)) => {
                let reply = Reply::from(DepotError::from(error));
                self.write(&reply, syntax, None).await?;
                return Ok(None);
            }
        };
        if let Err(wait) = self.depot.limiter.acquire(&self.peer.ip(), Instant::now()) {
            self.depot.metrics.rate_limited();
            let retry_after_ms = wait.as_millis().max(1) as u64;
            let reply = Reply::from(DepotError::RateLimited { retry_after_ms });
            self.write(&reply, request.syntax, request.id).await?;
            return Ok(None);
        }
        let started = Instant::now();
        let outcome = {
            // The session's lock is held for the handler call only, never across an await.
            let mut session = self.session.lock();
            handlers::execute(&self.depot, &mut session, &request.command, unix_millis())
        };
        let reply = self.act_on(outcome).await;
        let ok = !reply.is_error();
        self.depot
            .metrics
            .command(request.command.kind(), started.elapsed(), ok);
        self.write(&reply, request.syntax, request.id).await?;
        Ok((reply == Reply::Bye).then_some(CloseReason::Quit))
    }

    /// Does what the handler asked; returns the reply to send.
    async fn act_on(&mut self, outcome: Outcome) -> Reply {
        match outcome {
            Outcome::Reply(reply) => reply,
            Outcome::Close => {
                self.phase = Phase::Closing;
                Reply::Bye
            }
            Outcome::Wait {
                queue,
                worker,
                wait,
            } => self.wait_for_job(&queue, &worker, wait).await,
            Outcome::Subscribe(topics) => {
                for topic in &topics {
                    self.forward(topic);
                }
                self.phase = Phase::Subscribed;
                Reply::Int(self.forwarders.len() as i64)
            }
            Outcome::Unsubscribe(topics) => {
                for topic in &topics {
                    if let Some(forwarder) = self.forwarders.remove(topic) {
                        forwarder.abort();
                    }
                }
                if self.forwarders.is_empty() {
                    self.phase = Phase::Serving;
                }
                Reply::Int(self.forwarders.len() as i64)
            }
        }
    }

    /// The waiting state: until a job comes, the deadline passes, or the server shuts down.
    async fn wait_for_job(&mut self, queue: &str, worker: &str, wait: Duration) -> Reply {
        let previous = std::mem::replace(&mut self.phase, Phase::Waiting);
        let job = tokio::select! {
            job = handlers::queue::wait_for_job(&self.depot, queue, worker, wait) => job,
            _ = self.shutdown.changed() => None,
        };
        self.phase = previous;
        let mut session = self.session.lock();
        handlers::queue::finish_wait(&self.depot, &mut session, job, unix_millis())
    }

    /// Starts forwarding `topic`'s messages into the outbox.
    fn forward(&mut self, topic: &str) {
        let receiver = self.depot.pubsub.subscribe(topic);
        let outbox = self.outbox_sender.clone();
        let span = tracing::debug_span!("forward", topic);
        let task = tokio::spawn(forward(receiver, outbox).instrument(span));
        if let Some(old) = self.forwarders.insert(topic.to_owned(), task) {
            old.abort();
        }
    }

    async fn write(
        &mut self,
        reply: &Reply,
        syntax: Syntax,
        id: Option<u64>,
    ) -> std::io::Result<()> {
        let mut line = reply.render(syntax, id);
        line.push('\n');
        self.writer.write_all(line.as_bytes()).await?;
        // Pushed messages may come in bursts: flush when nothing else is waiting to be written.
        if self.outbox.is_empty() {
            self.writer.flush().await?;
        }
        Ok(())
    }

    /// Stops the forwarders and gives back the session's reserved jobs.
    fn finish(&mut self) {
        for (_, forwarder) in self.forwarders.drain() {
            forwarder.abort();
        }
        let mut session = self.session.lock();
        handlers::session::close(&self.depot, &mut session, unix_millis());
    }
}

/// Copies a topic's messages into a connection's outbox until either side goes away.
async fn forward(mut receiver: broadcast::Receiver<Message>, outbox: mpsc::Sender<Reply>) {
    loop {
        match receiver.recv().await {
            Ok(message) => {
                if outbox.send(Reply::Message(message)).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                warn!(missed, "subscriber too slow; messages dropped");
                let notice = Reply::Error {
                    code: crate::error::ErrorCode::Busy,
                    message: format!("{missed} message(s) dropped: reading too slowly"),
                };
                if outbox.send(notice).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn sleep_or_forever(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}
