//! What the table reports: the functions it holds, the history of updates, and what one commit
//! or rollback changed.

use std::time::{Duration, SystemTime};

use crate::entry::EntryOutcome;
use crate::slot::HotKey;
use crate::wire::protocol::StateChange;

/// A hot function as the table sees it now.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    /// The function's stable name.
    pub key: HotKey,
    /// The slot's function pointer type.
    pub signature: &'static str,
    /// 0 for the code compiled into the binary; each commit that replaces it gives a new number.
    pub version: u32,
    /// Whether the slot holds something other than the original code.
    pub replaced: bool,
    /// Whether it is an `async fn`.
    pub is_async: bool,
    /// The applied update whose code the function runs; `None` for the binary's own code.
    pub update_id: Option<u64>,
}

/// What happened to the table, oldest first.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// The update's number, unique in this process.
    pub update_id: u64,
    /// The label the update was given.
    pub label: String,
    /// Committed or rolled back.
    pub action: HistoryAction,
    /// When it happened.
    pub at: SystemTime,
    /// Each function it changed, with the version before and after.
    pub changes: Vec<VersionChange>,
    /// Each state type it migrated.
    pub states: Vec<StateChange>,
    /// What it did to entry redirects, if it set them.
    pub entries: Option<EntryOutcome>,
}

/// The kind of a [`HistoryEntry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryAction {
    /// The update was committed.
    Committed,
    /// The update was undone.
    RolledBack,
}

/// One function's version change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionChange {
    /// The function.
    pub key: HotKey,
    /// Its version before.
    pub from: u32,
    /// Its version after.
    pub to: u32,
}

/// The result of a commit or a rollback.
#[derive(Debug, Clone)]
pub struct CommitReport {
    /// The update's number.
    pub update_id: u64,
    /// Each function changed.
    pub changes: Vec<VersionChange>,
    /// Each state type whose values were migrated.
    pub states: Vec<StateChange>,
    /// How long the commit waited for participating threads.
    pub waited: Duration,
    /// What it did to entry redirects, if it set them.
    pub entries: Option<EntryOutcome>,
}
