//! How the queues index their jobs: a heap of ready jobs per queue, and the delayed and
//! reserved jobs by the time they change state. [`Inner::place`] files a job under its state.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};

use super::job::{Job, JobId, JobState};
use crate::util::clock::Millis;

/// Heap order: higher priority first, then lower sequence (earlier push) first.
type ReadyKey = (u8, Reverse<u64>, JobId);

/// One queue: its ready jobs, its dead letters and its counts.
#[derive(Debug, Default)]
pub(super) struct Queue {
    pub(super) ready: BinaryHeap<ReadyKey>,
    pub(super) dead: VecDeque<JobId>,
    pub(super) pushed: u64,
    pub(super) completed: u64,
    pub(super) failed: u64,
}

/// Everything behind the queues' lock.
#[derive(Debug, Default)]
pub(super) struct Inner {
    pub(super) jobs: HashMap<JobId, Job>,
    pub(super) queues: BTreeMap<String, Queue>,
    pub(super) delayed: BTreeSet<(Millis, JobId)>,
    pub(super) reserved: BTreeSet<(Millis, JobId)>,
    pub(super) next_id: u64,
    pub(super) sequence: u64,
}

impl Inner {
    /// Files a job under its state's index and keeps it.
    pub(super) fn place(&mut self, job: Job) {
        let id = job.id;
        let queue = self.queues.entry(job.queue.clone()).or_default();
        match &job.state {
            JobState::Ready => {
                self.sequence += 1;
                queue.ready.push((job.priority, Reverse(self.sequence), id));
            }
            JobState::Delayed { until } => {
                self.delayed.insert((*until, id));
            }
            JobState::Reserved { deadline, .. } => {
                self.reserved.insert((*deadline, id));
            }
            JobState::Dead { .. } => {
                queue.dead.push_back(id);
                if queue.dead.len() > DEAD_KEPT {
                    if let Some(oldest) = queue.dead.pop_front() {
                        self.jobs.remove(&oldest);
                    }
                }
            }
            JobState::Done { .. } => {
                self.jobs.remove(&id);
                return;
            }
        }
        self.jobs.insert(id, job);
    }
}

/// Dead jobs kept per queue; older ones are forgotten.
const DEAD_KEPT: usize = 1_000;

pub(super) fn reservation_deadline(job: &Job) -> Option<Millis> {
    match job.state {
        JobState::Reserved { deadline, .. } => Some(deadline),
        _ => None,
    }
}

/// Removes and returns the ids whose time is at or before `now`.
pub(super) fn take_due(index: &mut BTreeSet<(Millis, JobId)>, now: Millis) -> Vec<JobId> {
    let later = index.split_off(&(now.saturating_add(1), JobId(0)));
    let due = std::mem::replace(index, later);
    due.into_iter().map(|(_, id)| id).collect()
}
