//! The connection commands: `PING`, `HELLO`, `AUTH`, `WHOAMI`, `QUIT`, and what happens to a
//! session when its connection closes.

use hotreload_runtime::hot;
use hotreload_runtime::state::Locked;
use tracing::{info, warn};

use super::Outcome;
use crate::error::DepotError;
use crate::protocol::{Command, Reply};
use crate::queue::JobId;
use crate::service::Depot;
use crate::session::{Session, LIFETIME};
use crate::util::clock::Millis;

/// Answers a connection command.
#[hot]
#[tracing::instrument(level = "debug", skip_all, fields(session = session.id))]
pub fn handle(depot: &Depot, session: &mut Session, command: &Command) -> Outcome {
    match command {
        Command::Ping { message } => Reply::Pong(message.clone()).into(),
        Command::Hello { client } => {
            info!(session = session.id, client, "client introduced itself");
            session.client = Some(client.clone());
            Reply::Text(format!("hello {client}")).into()
        }
        Command::Auth { token } => match &depot.config.auth_token {
            Some(expected) if expected == token => {
                session.authenticated = true;
                Reply::Ok.into()
            }
            Some(_) => {
                warn!(session = session.id, peer = session.peer, "wrong token");
                DepotError::BadToken.into()
            }
            None => Reply::Ok.into(),
        },
        Command::Whoami => Reply::doc(&*session).into(),
        Command::Quit => Outcome::Close,
        other => DepotError::State(format!(
            "`{}` is not a connection command",
            other.kind().name()
        ))
        .into(),
    }
}

/// The connection is gone: jobs it reserved go back to their queues at once (rather than when
/// their reservations time out), and the lifetime counts are updated.
#[hot]
#[tracing::instrument(skip_all)]
pub fn close(depot: &Depot, session: &mut Locked<'_, Session>, now: Millis) -> usize {
    let Ok(session) = session.get_mut() else {
        return 0;
    };
    let worker = session.worker();
    let mut released = 0;
    for job in std::mem::take(&mut session.reserved) {
        if depot
            .queues
            .nack(JobId(job), &worker, "the worker disconnected", now)
            .is_ok()
        {
            released += 1;
        }
    }
    if let Ok(mut lifetime) = LIFETIME.write() {
        lifetime.sessions_closed += 1;
        lifetime.jobs_released_on_disconnect += released as u64;
    }
    info!(
        session = session.id,
        commands = session.commands,
        released,
        "session closed"
    );
    released
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::tests::{depot, reply, run, NOW};
    use crate::session;

    #[test]
    fn hello_names_the_worker() {
        let depot = depot();
        let session = session::open(4, "peer".into(), false, NOW);
        assert_eq!(reply(&depot, &session, "PING"), "+PONG");
        assert_eq!(
            reply(&depot, &session, "PING \"are you there\""),
            "+PONG \"are you there\""
        );
        assert_eq!(reply(&depot, &session, "HELLO mailer"), "$hello mailer");
        let whoami = reply(&depot, &session, "WHOAMI");
        assert!(whoami.contains("\"client\":\"mailer\""), "{whoami}");
        assert_eq!(run(&depot, &session, "QUIT"), Outcome::Close);
    }

    #[test]
    fn closing_gives_reserved_jobs_back() {
        let depot = depot();
        let session = session::open(5, "peer".into(), false, NOW);
        reply(&depot, &session, "PUSH q one");
        assert!(reply(&depot, &session, "RESERVE q").starts_with("=job 1 q"));
        let released = close(&depot, &mut session.lock(), NOW);
        assert_eq!(released, 1);
        assert_eq!(depot.queues.stats("q").delayed, 1);
    }
}
