//! The pub-sub commands. Subscriptions are recorded in the session here; the connection starts
//! and stops forwarding the topics' messages when it gets the [`Outcome`].

use hotreload_runtime::hot;
use tracing::debug;

use super::Outcome;
use crate::error::DepotError;
use crate::protocol::{Command, Reply};
use crate::service::Depot;
use crate::session::Session;
use crate::util::clock::Millis;

/// Topics one connection may follow at once.
const MAX_SUBSCRIPTIONS: usize = 64;

/// Answers a pub-sub command.
#[hot]
#[tracing::instrument(level = "debug", skip_all, fields(session = session.id))]
pub fn handle(depot: &Depot, session: &mut Session, command: &Command, now: Millis) -> Outcome {
    match command {
        Command::Publish { topic, message } => {
            let receivers = depot.pubsub.publish(topic, message, now);
            debug!(topic, receivers, "published");
            Reply::Int(receivers as i64).into()
        }
        Command::Subscribe { topics } => {
            let new: Vec<String> = topics
                .iter()
                .filter(|topic| !session.subscriptions.contains(*topic))
                .cloned()
                .collect();
            if session.subscriptions.len() + new.len() > MAX_SUBSCRIPTIONS {
                return DepotError::State(format!(
                    "at most {MAX_SUBSCRIPTIONS} subscriptions per connection"
                ))
                .into();
            }
            session.subscriptions.extend(new.iter().cloned());
            Outcome::Subscribe(new)
        }
        Command::Unsubscribe { topics } => {
            let gone: Vec<String> = if topics.is_empty() {
                std::mem::take(&mut session.subscriptions)
                    .into_iter()
                    .collect()
            } else {
                topics
                    .iter()
                    .filter(|topic| session.subscriptions.remove(*topic))
                    .cloned()
                    .collect()
            };
            Outcome::Unsubscribe(gone)
        }
        Command::Topics => Reply::doc(&depot.pubsub.list()).into(),
        other => DepotError::State(format!(
            "`{}` is not a pub-sub command",
            other.kind().name()
        ))
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::tests::{depot, reply, run, NOW};
    use crate::session;

    #[test]
    fn subscriptions_are_recorded_once() {
        let depot = depot();
        let session = session::open(1, "peer".into(), false, NOW);
        assert_eq!(
            run(&depot, &session, "SUBSCRIBE news sport"),
            Outcome::Subscribe(vec!["news".into(), "sport".into()])
        );
        assert_eq!(
            run(&depot, &session, "SUBSCRIBE news"),
            Outcome::Subscribe(vec![])
        );
        assert_eq!(
            run(&depot, &session, "UNSUBSCRIBE sport weather"),
            Outcome::Unsubscribe(vec!["sport".into()])
        );
        assert_eq!(
            run(&depot, &session, "UNSUBSCRIBE"),
            Outcome::Unsubscribe(vec!["news".into()])
        );
        assert_eq!(reply(&depot, &session, "PUBLISH news hi"), ":0");
    }
}
