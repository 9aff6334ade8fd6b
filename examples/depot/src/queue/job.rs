//! One job and the states it moves through:
//!
//! ```text
//!             push(delay)                reserve             ack
//!   Delayed ─────────────► Ready ───────────────► Reserved ─────► Done
//!      ▲      (due)          ▲                     │  │
//!      │                     └──── deadline passed ┘  │ nack
//!      └───────────── backoff ◄───────────────────────┤
//!                                                     └─► Dead (attempts used up)
//! ```
//!
//! Each transition is a method that checks the state it starts from, so a late `ACK` from a
//! worker whose reservation already timed out is an error, not a lost job.

use serde::{Deserialize, Serialize};

use crate::error::DepotError;
use crate::util::backoff::Backoff;
use crate::util::clock::{self, Millis};

/// A job's number, unique for the life of the server (and across snapshots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its time: first delayed, or backing off after a failure.
    Delayed { until: Millis },
    /// Waiting for a worker.
    Ready,
    /// Taken by `worker`, who must ack or nack it before `deadline`.
    Reserved { worker: String, deadline: Millis },
    /// Finished.
    Done { at: Millis },
    /// Failed too often; kept for inspection.
    Dead { at: Millis },
}

impl JobState {
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Delayed { .. } => "delayed",
            JobState::Ready => "ready",
            JobState::Reserved { .. } => "reserved",
            JobState::Done { .. } => "done",
            JobState::Dead { .. } => "dead",
        }
    }
}

/// How a job is pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushOptions {
    /// Higher runs first; equal priorities run in push order.
    pub priority: u8,
    pub delay_ms: u64,
    /// Tries before the job is dead; 0 takes the queue's default.
    pub max_attempts: u32,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            priority: 5,
            delay_ms: 0,
            max_attempts: 0,
        }
    }
}

/// A job: a payload and its bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub queue: String,
    pub payload: String,
    pub priority: u8,
    pub attempts: u32,
    pub max_attempts: u32,
    pub created_at: Millis,
    pub state: JobState,
    pub last_error: Option<String>,
}

impl Job {
    pub fn new(
        id: JobId,
        queue: &str,
        payload: String,
        options: &PushOptions,
        default_attempts: u32,
        now: Millis,
    ) -> Self {
        let state = if options.delay_ms > 0 {
            JobState::Delayed {
                until: now.saturating_add(options.delay_ms),
            }
        } else {
            JobState::Ready
        };
        let max_attempts = if options.max_attempts == 0 {
            default_attempts
        } else {
            options.max_attempts
        };
        Job {
            id,
            queue: queue.to_owned(),
            payload,
            priority: options.priority,
            attempts: 0,
            max_attempts: max_attempts.max(1),
            created_at: now,
            state,
            last_error: None,
        }
    }

    fn refuse(&self, action: &'static str) -> DepotError {
        DepotError::InvalidTransition {
            id: self.id.0,
            state: self.state.name(),
            action,
        }
    }

    /// Delayed → Ready, once its time has come; says whether it moved.
    pub fn promote(&mut self, now: Millis) -> bool {
        match self.state {
            JobState::Delayed { until } if until <= now => {
                self.state = JobState::Ready;
                true
            }
            _ => false,
        }
    }

    /// Ready → Reserved by `worker` for `visibility_ms`.
    pub fn reserve(
        &mut self,
        worker: &str,
        visibility_ms: u64,
        now: Millis,
    ) -> Result<(), DepotError> {
        if self.state != JobState::Ready {
            return Err(self.refuse("reserve"));
        }
        self.attempts += 1;
        self.state = JobState::Reserved {
            worker: worker.to_owned(),
            deadline: now.saturating_add(visibility_ms),
        };
        Ok(())
    }

    fn check_holder(&self, worker: &str, action: &'static str) -> Result<(), DepotError> {
        match &self.state {
            JobState::Reserved { worker: holder, .. } if holder == worker => Ok(()),
            JobState::Reserved { .. } => Err(DepotError::NotYourJob { id: self.id.0 }),
            _ => Err(self.refuse(action)),
        }
    }

    /// Reserved (by `worker`) → Done.
    pub fn ack(&mut self, worker: &str, now: Millis) -> Result<(), DepotError> {
        self.check_holder(worker, "ack")?;
        self.state = JobState::Done { at: now };
        Ok(())
    }

    /// Reserved (by `worker`) → Delayed by the backoff, or Dead when its attempts are used up.
    pub fn nack(
        &mut self,
        worker: &str,
        reason: &str,
        backoff: &Backoff,
        now: Millis,
    ) -> Result<(), DepotError> {
        self.check_holder(worker, "nack")?;
        self.fail(reason, backoff, now);
        Ok(())
    }

    /// Reserved past its deadline → as if nacked: the worker is presumed gone.
    pub fn time_out(&mut self, backoff: &Backoff, now: Millis) -> bool {
        match &self.state {
            JobState::Reserved { deadline, worker } if *deadline <= now => {
                let reason = format!("reservation by {worker} timed out");
                self.fail(&reason, backoff, now);
                true
            }
            _ => false,
        }
    }

    fn fail(&mut self, reason: &str, backoff: &Backoff, now: Millis) {
        self.last_error = Some(reason.to_owned());
        self.state = if self.attempts >= self.max_attempts {
            JobState::Dead { at: now }
        } else {
            let delay = backoff.delay(self.attempts.saturating_sub(1));
            JobState::Delayed {
                until: clock::after(now, delay),
            }
        };
    }

    /// Dead → Ready with fresh attempts (`RETRY` from the dead-letter list).
    pub fn revive(&mut self) -> Result<(), DepotError> {
        if !matches!(self.state, JobState::Dead { .. }) {
            return Err(self.refuse("revive"));
        }
        self.attempts = 0;
        self.state = JobState::Ready;
        Ok(())
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.state, JobState::Done { .. } | JobState::Dead { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_000;

    fn job(max_attempts: u32) -> Job {
        let options = PushOptions {
            max_attempts,
            ..PushOptions::default()
        };
        Job::new(JobId(1), "q", "payload".into(), &options, 3, NOW)
    }

    #[test]
    fn a_job_runs_once_and_is_done() {
        let mut job = job(0);
        assert_eq!(job.max_attempts, 3, "the queue's default applies");
        job.reserve("w1", 100, NOW).unwrap();
        assert_eq!(job.ack("w2", NOW), Err(DepotError::NotYourJob { id: 1 }));
        job.ack("w1", NOW + 5).unwrap();
        assert!(job.is_finished());
        assert_eq!(
            job.ack("w1", NOW + 6),
            Err(DepotError::InvalidTransition {
                id: 1,
                state: "done",
                action: "ack"
            })
        );
    }

    #[test]
    fn failures_back_off_then_die() {
        let backoff = Backoff::exact(10, 1_000);
        let mut job = job(2);
        job.reserve("w", 100, NOW).unwrap();
        job.nack("w", "boom", &backoff, NOW).unwrap();
        assert_eq!(job.state, JobState::Delayed { until: NOW + 10 });
        assert!(!job.promote(NOW + 9));
        assert!(job.promote(NOW + 10));
        job.reserve("w", 100, NOW + 10).unwrap();
        job.nack("w", "boom again", &backoff, NOW + 20).unwrap();
        assert_eq!(job.state, JobState::Dead { at: NOW + 20 });
        assert_eq!(job.last_error.as_deref(), Some("boom again"));
        job.revive().unwrap();
        assert_eq!((job.state.clone(), job.attempts), (JobState::Ready, 0));
    }

    #[test]
    fn a_reservation_times_out_at_its_deadline() {
        let backoff = Backoff::exact(0, 0);
        let mut job = job(5);
        job.reserve("w", 100, NOW).unwrap();
        assert!(!job.time_out(&backoff, NOW + 99));
        assert!(job.time_out(&backoff, NOW + 100));
        assert!(job.promote(NOW + 100));
        assert_eq!(
            job.last_error.as_deref(),
            Some("reservation by w timed out")
        );
    }

    #[test]
    fn delayed_jobs_wait() {
        let options = PushOptions {
            delay_ms: 50,
            ..PushOptions::default()
        };
        let mut job = Job::new(JobId(2), "q", String::new(), &options, 1, NOW);
        assert!(job.reserve("w", 1, NOW).is_err());
        assert!(job.promote(NOW + 50));
        let json = serde_json::to_string(&job.state).unwrap();
        assert_eq!(json, r#"{"state":"ready"}"#);
    }
}
