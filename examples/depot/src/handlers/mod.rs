//! The request handlers: the code a patch replaces while clients stay connected.
//!
//! [`execute`] runs one parsed command against the shared [`Depot`] and the connection's
//! [`Session`]. Most commands answer at once; a few need the connection to do something
//! asynchronous first (wait for a job, change its subscriptions, close), which they ask for
//! with an [`Outcome`]: the handlers stay synchronous, and the connection's state machine does the
//! waiting without holding the session's lock.

pub mod kv;
pub mod pubsub;
pub mod queue;
pub mod session;

use std::time::Duration;

use hotreload_runtime::hot;
use hotreload_runtime::state::Locked;
use tracing::debug;

use crate::error::DepotError;
use crate::protocol::{Command, CommandKind, Reply};
use crate::service::Depot;
use crate::session::Session;
use crate::util::clock::Millis;

/// What the connection does after a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Send this reply.
    Reply(Reply),
    /// No job was ready: wait up to `wait` for one on `queue`, then reserve it for `worker`.
    Wait {
        queue: String,
        worker: String,
        wait: Duration,
    },
    /// Start forwarding these topics (already recorded in the session).
    Subscribe(Vec<String>),
    /// Stop forwarding these topics (already removed from the session).
    Unsubscribe(Vec<String>),
    /// Say goodbye and close.
    Close,
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Self {
        Outcome::Reply(reply)
    }
}

impl From<DepotError> for Outcome {
    fn from(error: DepotError) -> Self {
        Outcome::Reply(error.into())
    }
}

/// Runs one command. The caller holds the session's lock, so a patch that migrates sessions
/// cannot come between the lock and this call.
#[hot]
#[tracing::instrument(name = "request", skip_all, fields(cmd = command.kind().name()))]
pub fn execute(
    depot: &Depot,
    session: &mut Locked<'_, Session>,
    command: &Command,
    now: Millis,
) -> Outcome {
    let session = match session.get_mut() {
        Ok(session) => session,
        Err(error) => return DepotError::from(error).into(),
    };
    session.commands += 1;
    session.last_seen = now;
    let kind = command.kind();
    if kind.writes() && session.authenticated {
        depot.mark_dirty();
    }
    let outcome = match kind {
        _ if !session.authenticated && !kind.allowed_before_auth() => {
            debug!(session = session.id, "refused before AUTH");
            DepotError::AuthRequired.into()
        }
        CommandKind::Ping
        | CommandKind::Hello
        | CommandKind::Auth
        | CommandKind::Quit
        | CommandKind::Whoami => session::handle(depot, session, command),
        CommandKind::Push
        | CommandKind::Reserve
        | CommandKind::Ack
        | CommandKind::Nack
        | CommandKind::Retry
        | CommandKind::QueueStats
        | CommandKind::Dead
        | CommandKind::Queues => queue::handle(depot, session, command, now),
        CommandKind::Publish
        | CommandKind::Subscribe
        | CommandKind::Unsubscribe
        | CommandKind::Topics => pubsub::handle(depot, session, command, now),
        CommandKind::Info => depot.info(now).into(),
        CommandKind::Stats => depot.stats().into(),
        CommandKind::Save => save(depot),
        _ => kv::handle(depot, command, now).into(),
    };
    if matches!(&outcome, Outcome::Reply(reply) if reply.is_error()) {
        session.errors += 1;
    }
    outcome
}

fn save(depot: &Depot) -> Outcome {
    if depot.request_save() {
        Reply::Ok.into()
    } else {
        Reply::Error {
            code: crate::error::ErrorCode::Internal,
            message: "snapshots are off (no snapshot path)".to_owned(),
        }
        .into()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Config;
    use crate::session;
    use hotreload_runtime::state::Handle;

    pub(crate) const NOW: Millis = 1_700_000_000_000;

    pub(crate) fn depot() -> Depot {
        let mut config = Config::default();
        config.snapshot.path = None;
        Depot::new(config)
    }

    pub(crate) fn run(depot: &Depot, session: &Handle<Session>, line: &str) -> Outcome {
        let command = crate::protocol::parse_line(line).unwrap();
        let mut locked = session.lock();
        execute(depot, &mut locked, &command, NOW)
    }

    pub(crate) fn reply(depot: &Depot, session: &Handle<Session>, line: &str) -> String {
        match run(depot, session, line) {
            Outcome::Reply(reply) => reply.to_text(),
            other => panic!("`{line}` asked the connection for {other:?}"),
        }
    }

    #[test]
    fn a_server_with_a_token_wants_it_first() {
        let mut config = Config {
            auth_token: Some("s3cret".into()),
            ..Config::default()
        };
        config.snapshot.path = None;
        let depot = Depot::new(config);
        let session = session::open(1, "peer".into(), true, NOW);
        assert_eq!(
            reply(&depot, &session, "GET k"),
            "-ERR auth say `AUTH <token>` first"
        );
        assert_eq!(
            reply(&depot, &session, "AUTH nope"),
            "-ERR auth wrong token"
        );
        assert_eq!(reply(&depot, &session, "AUTH s3cret"), "+OK");
        assert_eq!(reply(&depot, &session, "GET k"), "_");
        let errors = session.read().unwrap().errors;
        assert_eq!(errors, 2);
    }

    #[test]
    fn save_without_snapshots_says_so() {
        let depot = depot();
        let session = session::open(1, "peer".into(), false, NOW);
        assert!(reply(&depot, &session, "SAVE").starts_with("-ERR internal snapshots are off"));
        assert!(reply(&depot, &session, "INFO").starts_with("#{"));
    }
}
