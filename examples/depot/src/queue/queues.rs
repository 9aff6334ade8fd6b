//! Every queue of the server behind one lock, with a [`Notify`] per queue so that workers waiting
//! in `RESERVE ... WAIT` wake up when a job becomes ready.
//!
//! Ready jobs sit in a binary heap per queue ordered by (priority, push order); delayed and
//! reserved jobs are indexed by the time they change state, so the sweeper finds them without
//! looking at every job. Finished jobs are dropped, except the dead ones, kept (bounded) per queue.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::index::{reservation_deadline, take_due, Inner};
use super::job::{Job, JobId, JobState, PushOptions};
use crate::config::QueueConfig;
use crate::error::DepotError;
use crate::util::clock::Millis;

/// Counts of one queue, for `QSTATS`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    pub queue: String,
    pub ready: usize,
    pub delayed: usize,
    pub reserved: usize,
    pub dead: usize,
    pub pushed: u64,
    pub completed: u64,
    pub failed: u64,
}

/// The queues' jobs as a snapshot keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedQueues {
    pub next_id: u64,
    pub jobs: Vec<Job>,
}

/// What a sweep of the queues did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueSweep {
    pub promoted: usize,
    pub timed_out: usize,
}

/// All queues.
#[derive(Debug)]
pub struct Queues {
    config: QueueConfig,
    inner: Mutex<Inner>,
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Queues {
    pub fn new(config: QueueConfig) -> Self {
        Queues {
            config,
            inner: Mutex::new(Inner {
                next_id: 1,
                ..Inner::default()
            }),
            waiters: Mutex::new(HashMap::new()),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The notification workers waiting on `queue` sleep on.
    pub fn waiter(&self, queue: &str) -> Arc<Notify> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(waiters.entry(queue.to_owned()).or_default())
    }

    fn wake(&self, queue: &str, jobs: usize) {
        let waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(notify) = waiters.get(queue) {
            for _ in 0..jobs {
                notify.notify_one();
            }
        }
    }

    /// Adds a job; returns its id.
    pub fn push(
        &self,
        queue: &str,
        payload: String,
        options: &PushOptions,
        now: Millis,
    ) -> Result<JobId, DepotError> {
        let mut inner = self.inner();
        let waiting = inner
            .queues
            .get(queue)
            .map_or(0, |q| q.ready.len() + q.dead.len());
        if waiting >= self.config.max_jobs_per_queue {
            return Err(DepotError::QueueFull(queue.to_owned()));
        }
        let id = JobId(inner.next_id);
        inner.next_id += 1;
        let job = Job::new(id, queue, payload, options, self.config.max_attempts, now);
        let ready = job.state == JobState::Ready;
        inner.place(job);
        inner.queues.entry(queue.to_owned()).or_default().pushed += 1;
        drop(inner);
        if ready {
            self.wake(queue, 1);
        }
        Ok(id)
    }

    /// Takes the best ready job of `queue` for `worker`, if there is one.
    pub fn reserve(&self, queue: &str, worker: &str, now: Millis) -> Option<Job> {
        let mut inner = self.inner();
        let visibility = self.config.visibility_timeout_ms;
        let (_, _, id) = inner.queues.get_mut(queue)?.ready.pop()?;
        let job = inner.jobs.get_mut(&id).expect("a ready job is known");
        job.reserve(worker, visibility, now)
            .expect("a job in the ready heap is ready");
        let reserved = job.clone();
        if let JobState::Reserved { deadline, .. } = reserved.state {
            inner.reserved.insert((deadline, id));
        }
        Some(reserved)
    }

    /// Marks a reserved job done.
    pub fn ack(&self, id: JobId, worker: &str, now: Millis) -> Result<(), DepotError> {
        let mut inner = self.inner();
        let job = inner.jobs.get_mut(&id).ok_or(DepotError::NoSuchJob(id.0))?;
        let deadline = reservation_deadline(job);
        job.ack(worker, now)?;
        let queue = job.queue.clone();
        inner.jobs.remove(&id);
        if let Some(deadline) = deadline {
            inner.reserved.remove(&(deadline, id));
        }
        inner.queues.entry(queue).or_default().completed += 1;
        Ok(())
    }

    /// Gives a reserved job back as failed: it is retried after a backoff, or dies.
    pub fn nack(
        &self,
        id: JobId,
        worker: &str,
        reason: &str,
        now: Millis,
    ) -> Result<JobState, DepotError> {
        let mut inner = self.inner();
        let job = inner.jobs.get_mut(&id).ok_or(DepotError::NoSuchJob(id.0))?;
        let deadline = reservation_deadline(job);
        job.nack(worker, reason, &self.config.backoff, now)?;
        let job = job.clone();
        if let Some(deadline) = deadline {
            inner.reserved.remove(&(deadline, id));
        }
        inner.queues.entry(job.queue.clone()).or_default().failed += 1;
        let state = job.state.clone();
        inner.place(job);
        Ok(state)
    }

    /// Moves a dead job back to its queue.
    pub fn revive(&self, id: JobId) -> Result<(), DepotError> {
        let mut inner = self.inner();
        let job = inner.jobs.get_mut(&id).ok_or(DepotError::NoSuchJob(id.0))?;
        job.revive()?;
        let job = job.clone();
        if let Some(queue) = inner.queues.get_mut(&job.queue) {
            queue.dead.retain(|dead| *dead != id);
        }
        let queue = job.queue.clone();
        inner.place(job);
        drop(inner);
        self.wake(&queue, 1);
        Ok(())
    }

    pub fn job(&self, id: JobId) -> Option<Job> {
        self.inner().jobs.get(&id).cloned()
    }

    /// Delayed jobs whose time has come become ready; reservations past their deadline fail.
    pub fn sweep(&self, now: Millis) -> QueueSweep {
        let mut inner = self.inner();
        let mut woken: BTreeMap<String, usize> = BTreeMap::new();
        let timed_out: Vec<JobId> = take_due(&mut inner.reserved, now);
        for id in &timed_out {
            if let Some(job) = inner.jobs.get_mut(id) {
                if job.time_out(&self.config.backoff, now) {
                    let job = job.clone();
                    inner.queues.entry(job.queue.clone()).or_default().failed += 1;
                    inner.place(job);
                }
            }
        }
        let due = take_due(&mut inner.delayed, now);
        let promoted = due.len();
        for id in due {
            if let Some(job) = inner.jobs.get_mut(&id) {
                job.promote(now);
                let job = job.clone();
                *woken.entry(job.queue.clone()).or_default() += 1;
                inner.place(job);
            }
        }
        drop(inner);
        for (queue, jobs) in woken {
            self.wake(&queue, jobs);
        }
        QueueSweep {
            promoted,
            timed_out: timed_out.len(),
        }
    }

    /// Counts for one queue.
    pub fn stats(&self, queue: &str) -> QueueStats {
        let inner = self.inner();
        let mut stats = QueueStats {
            queue: queue.to_owned(),
            ..QueueStats::default()
        };
        for job in inner.jobs.values().filter(|job| job.queue == queue) {
            match job.state {
                JobState::Ready => stats.ready += 1,
                JobState::Delayed { .. } => stats.delayed += 1,
                JobState::Reserved { .. } => stats.reserved += 1,
                JobState::Dead { .. } => stats.dead += 1,
                JobState::Done { .. } => {}
            }
        }
        if let Some(counts) = inner.queues.get(queue) {
            stats.pushed = counts.pushed;
            stats.completed = counts.completed;
            stats.failed = counts.failed;
        }
        stats
    }

    /// Names of the queues that have had jobs.
    pub fn names(&self) -> Vec<String> {
        self.inner().queues.keys().cloned().collect()
    }

    /// The dead jobs of `queue`, oldest first.
    pub fn dead(&self, queue: &str) -> Vec<Job> {
        let inner = self.inner();
        let Some(counts) = inner.queues.get(queue) else {
            return Vec::new();
        };
        counts
            .dead
            .iter()
            .filter_map(|id| inner.jobs.get(id).cloned())
            .collect()
    }

    /// Jobs not finished, over all queues.
    pub fn pending(&self) -> usize {
        self.inner()
            .jobs
            .values()
            .filter(|job| !job.is_finished())
            .count()
    }

    /// Every job still held, for a snapshot; reserved ones are saved as ready, since the worker
    /// holding them will not be there after a restart.
    pub fn export(&self) -> SavedQueues {
        let inner = self.inner();
        let mut jobs: Vec<Job> = inner.jobs.values().cloned().collect();
        for job in &mut jobs {
            if matches!(job.state, JobState::Reserved { .. }) {
                job.state = JobState::Ready;
            }
        }
        jobs.sort_by_key(|job| job.id);
        SavedQueues {
            next_id: inner.next_id,
            jobs,
        }
    }

    /// Loads a snapshot's jobs into empty queues.
    pub fn import(&self, saved: SavedQueues) -> usize {
        let mut inner = self.inner();
        let loaded = saved.jobs.len();
        inner.next_id = inner.next_id.max(saved.next_id);
        for job in saved.jobs {
            inner.queues.entry(job.queue.clone()).or_default();
            inner.place(job);
        }
        loaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::backoff::Backoff;

    const NOW: Millis = 10_000;

    fn queues() -> Queues {
        Queues::new(QueueConfig {
            visibility_timeout_ms: 100,
            max_attempts: 2,
            max_jobs_per_queue: 3,
            backoff: Backoff::exact(10, 10),
        })
    }

    fn push(queues: &Queues, payload: &str, priority: u8) -> JobId {
        let options = PushOptions {
            priority,
            ..PushOptions::default()
        };
        queues.push("q", payload.into(), &options, NOW).unwrap()
    }

    #[test]
    fn higher_priority_first_then_fifo() {
        let queues = queues();
        push(&queues, "low", 1);
        push(&queues, "first", 9);
        push(&queues, "second", 9);
        let order: Vec<String> = (0..3)
            .map(|_| queues.reserve("q", "w", NOW).unwrap().payload)
            .collect();
        assert_eq!(order, ["first", "second", "low"]);
        assert!(queues.reserve("q", "w", NOW).is_none());
    }

    #[test]
    fn a_full_queue_refuses() {
        let queues = queues();
        for i in 0..3 {
            push(&queues, &i.to_string(), 5);
        }
        let refused = queues.push("q", "x".into(), &PushOptions::default(), NOW);
        assert_eq!(refused, Err(DepotError::QueueFull("q".into())));
    }

    #[test]
    fn timeouts_retry_then_dead_letter() {
        let queues = queues();
        let id = push(&queues, "job", 5);
        queues.reserve("q", "w", NOW).unwrap();
        assert_eq!(queues.sweep(NOW + 100).timed_out, 1);
        assert_eq!(queues.stats("q").delayed, 1);
        assert_eq!(queues.sweep(NOW + 110).promoted, 1);
        queues.reserve("q", "w", NOW + 110).unwrap();
        let state = queues.nack(id, "w", "broken", NOW + 120).unwrap();
        assert_eq!(state, JobState::Dead { at: NOW + 120 });
        let dead = queues.dead("q");
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].last_error.as_deref(), Some("broken"));
        queues.revive(id).unwrap();
        assert_eq!(queues.reserve("q", "w2", NOW + 130).unwrap().id, id);
        queues.ack(id, "w2", NOW + 140).unwrap();
        let stats = queues.stats("q");
        assert_eq!((stats.pushed, stats.completed, stats.failed), (1, 1, 2));
        assert_eq!(queues.pending(), 0);
    }

    #[test]
    fn a_late_ack_is_refused() {
        let queues = queues();
        let id = push(&queues, "job", 5);
        queues.reserve("q", "slow", NOW).unwrap();
        queues.sweep(NOW + 200);
        assert!(matches!(
            queues.ack(id, "slow", NOW + 201),
            Err(DepotError::InvalidTransition { .. })
        ));
        assert_eq!(
            queues.ack(JobId(99), "w", NOW),
            Err(DepotError::NoSuchJob(99))
        );
    }

    #[test]
    fn snapshots_keep_jobs_and_ids() {
        let queues = queues();
        push(&queues, "a", 5);
        push(&queues, "b", 5);
        queues.reserve("q", "w", NOW).unwrap();
        let saved = queues.export();
        assert!(saved.jobs.iter().all(|job| job.state == JobState::Ready));
        let restored = Queues::new(QueueConfig::default());
        assert_eq!(restored.import(saved), 2);
        assert_eq!(restored.stats("q").ready, 2);
        let next = restored
            .push("q", "c".into(), &PushOptions::default(), NOW)
            .unwrap();
        assert_eq!(next, JobId(3));
    }

    #[tokio::test]
    async fn a_push_wakes_a_waiting_worker() {
        let queues = Arc::new(queues());
        let waiter = queues.waiter("q");
        let notified = waiter.notified();
        push(&queues, "job", 5);
        tokio::time::timeout(std::time::Duration::from_secs(1), notified)
            .await
            .expect("the push woke the waiter");
    }
}
