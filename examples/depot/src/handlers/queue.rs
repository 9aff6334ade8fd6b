//! The job queue commands, and the wait of `RESERVE queue WAIT millis`.

use std::time::Duration;

use hotreload_runtime::hot;
use hotreload_runtime::state::Locked;
use tracing::{debug, info};

use super::Outcome;
use crate::error::DepotError;
use crate::protocol::{Command, JobView, Reply};
use crate::queue::{Job, JobId, JobState};
use crate::service::Depot;
use crate::session::Session;
use crate::util::clock::{unix_millis, Millis};

/// Longest wait a client may ask for.
const MAX_WAIT: Duration = Duration::from_secs(300);

/// Answers a queue command.
#[hot]
#[tracing::instrument(level = "debug", skip_all, fields(session = session.id))]
pub fn handle(depot: &Depot, session: &mut Session, command: &Command, now: Millis) -> Outcome {
    let queues = &depot.queues;
    let worker = session.worker();
    let result: Result<Outcome, DepotError> = match command {
        Command::Push {
            queue,
            payload,
            options,
        } => queues.push(queue, payload.clone(), options, now).map(|id| {
            info!(job = id.0, queue, priority = options.priority, "job pushed");
            Reply::Int(id.0 as i64).into()
        }),
        Command::Reserve { queue, wait_ms } => Ok(match queues.reserve(queue, &worker, now) {
            Some(job) => reserved(session, &job).into(),
            None => match wait_ms {
                Some(wait) if *wait > 0 => Outcome::Wait {
                    queue: queue.clone(),
                    worker,
                    wait: Duration::from_millis(*wait).min(MAX_WAIT),
                },
                _ => Reply::Nil.into(),
            },
        }),
        Command::Ack { job } => queues.ack(JobId(*job), &worker, now).map(|()| {
            session.reserved.remove(job);
            debug!(job, "job done");
            Reply::Ok.into()
        }),
        Command::Nack { job, reason } => {
            queues.nack(JobId(*job), &worker, reason, now).map(|state| {
                session.reserved.remove(job);
                info!(job, reason, next = state.name(), "job failed");
                Reply::Text(state.name().to_owned()).into()
            })
        }
        Command::Retry { job } => queues.revive(JobId(*job)).map(|()| Reply::Ok.into()),
        Command::QueueStats { queue } => Ok(Reply::doc(&queues.stats(queue)).into()),
        Command::Dead { queue } => {
            let dead: Vec<serde_json::Value> = queues
                .dead(queue)
                .iter()
                .map(|job| {
                    serde_json::json!({
                        "id": job.id.0,
                        "payload": job.payload,
                        "attempts": job.attempts,
                        "error": job.last_error,
                    })
                })
                .collect();
            Ok(Reply::Doc(dead.into()).into())
        }
        Command::Queues => Ok(Reply::List(queues.names()).into()),
        other => Err(DepotError::State(format!(
            "`{}` is not a queue command",
            other.kind().name()
        ))),
    };
    result.unwrap_or_else(Outcome::from)
}

/// Records a reservation in the session and answers it.
fn reserved(session: &mut Session, job: &Job) -> Reply {
    session.reserved.insert(job.id.0);
    debug!(job = job.id.0, worker = session.worker(), "job reserved");
    Reply::Job(JobView::from(job))
}

/// Waits up to `wait` for a job on `queue` and reserves it for `worker`. Runs without the
/// session's lock: the connection records the reservation with [`finish_wait`] afterwards.
#[hot]
#[tracing::instrument(skip(depot))]
pub async fn wait_for_job(depot: &Depot, queue: &str, worker: &str, wait: Duration) -> Option<Job> {
    let deadline = tokio::time::Instant::now() + wait;
    let notify = depot.queues.waiter(queue);
    loop {
        // Registered before looking, so a push between the look and the wait is not missed.
        let notified = notify.notified();
        if let Some(job) = depot.queues.reserve(queue, worker, unix_millis()) {
            return Some(job);
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            debug!("no job before the deadline");
            return None;
        }
    }
}

/// Answers a `RESERVE ... WAIT` once its wait is over.
#[hot]
pub fn finish_wait(
    depot: &Depot,
    session: &mut Locked<'_, Session>,
    job: Option<Job>,
    now: Millis,
) -> Reply {
    let session = match session.get_mut() {
        Ok(session) => session,
        Err(error) => {
            // The session cannot record the job: give it back rather than lose it.
            if let Some(job) = &job {
                if let JobState::Reserved { worker, .. } = &job.state {
                    let _ = depot
                        .queues
                        .nack(job.id, worker, "session unavailable", now);
                }
            }
            return DepotError::from(error).into();
        }
    };
    match job {
        Some(job) => reserved(session, &job),
        None => Reply::Nil,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::tests::{depot, reply, run, NOW};
    use crate::session;
    use std::sync::Arc;

    #[test]
    fn push_reserve_ack() {
        let depot = depot();
        let session = session::open(1, "peer".into(), false, NOW);
        let said = |line: &str| reply(&depot, &session, line);
        assert_eq!(said("HELLO w1"), "$hello w1");
        assert_eq!(said("PUSH mail \"to ada\" PRIORITY 1"), ":1");
        assert_eq!(said("PUSH mail \"to bob\" PRIORITY 9"), ":2");
        assert_eq!(said("RESERVE mail"), "=job 2 mail attempts=1 \"to bob\"");
        assert_eq!(said("ACK 2"), "+OK");
        assert_eq!(said("ACK 2"), "-ERR notfound no job 2");
        assert_eq!(said("RESERVE mail"), "=job 1 mail attempts=1 \"to ada\"");
        assert_eq!(said("NACK 1 smtp down"), "$delayed");
        assert_eq!(said("RESERVE mail"), "_");
        assert!(said("QSTATS mail").contains("\"delayed\":1"));
        assert_eq!(said("QUEUES"), "*1 mail");
        assert!(session.read().unwrap().reserved.is_empty());
    }

    #[test]
    fn an_empty_queue_with_wait_asks_the_connection_to_wait() {
        let depot = depot();
        let session = session::open(7, "peer".into(), false, NOW);
        assert_eq!(
            run(&depot, &session, "RESERVE q WAIT 900000"),
            Outcome::Wait {
                queue: "q".into(),
                worker: "conn-7".into(),
                wait: MAX_WAIT,
            }
        );
    }

    #[tokio::test]
    async fn a_waiting_worker_gets_the_next_job() {
        let depot = Arc::new(depot());
        let waiting = {
            let depot = Arc::clone(&depot);
            tokio::spawn(
                async move { wait_for_job(&depot, "q", "w", Duration::from_secs(5)).await },
            )
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let session = session::open(8, "peer".into(), false, NOW);
        reply(&depot, &session, "PUSH q late");
        let job = waiting.await.unwrap().expect("the push reached the waiter");
        assert_eq!(job.payload, "late");
        let answer = finish_wait(&depot, &mut session.lock(), Some(job), NOW);
        assert!(answer.to_text().starts_with("=job 1 q"));
        assert!(session.read().unwrap().reserved.contains(&1));
        let none = wait_for_job(&depot, "q", "w", Duration::from_millis(10)).await;
        assert_eq!(none, None);
    }
}
