//! Named job queues with priorities, delayed jobs, reservations that time out, retries with
//! backoff and a dead-letter list.

mod index;
pub mod job;
pub mod queues;

pub use job::{Job, JobId, JobState, PushOptions};
pub use queues::{QueueStats, Queues, SavedQueues};
