//! Commit and rollback: both are one swap at a safe point (migrate the state types, write the
//! slots, record the history), differing only in what they write to the slots.

use std::time::{Duration, Instant, SystemTime};

use super::{AppliedUpdate, Code, EntrySet, Previous, Table, TableState};
use super::{CommitReport, HistoryAction, HistoryEntry, Update, VersionChange};
use crate::entry::EntryOutcome;
use crate::error::Error;
use crate::safe_point;
use crate::state::{Migrated, Replaced, TransitionSet};
use crate::sync::lock;

impl Table {
    /// Installs every entry of `update` at once, at a safe point, with the configured timeout.
    pub fn commit(&self, update: Update) -> Result<CommitReport, Error> {
        self.commit_with_timeout(update, self.safe_point_timeout())
    }

    /// Installs every entry of `update` at once: waits until every participating thread is parked
    /// in [`safe_point`](crate::safe_point), swaps all the slots, and releases them. If they do not
    /// all arrive within `timeout`, nothing changes.
    pub fn commit_with_timeout(
        &self,
        update: Update,
        timeout: Duration,
    ) -> Result<CommitReport, Error> {
        let _one_at_a_time = lock(&self.commit_lock);
        if update.is_empty() {
            return Err(Error::EmptyUpdate);
        }
        let (update_id, targets) = {
            let mut state = self.lock_state();
            (state.next_update_id, state.targets_of(&update)?)
        };
        let swap = Swap {
            update_id,
            label: &update.label,
            action: HistoryAction::Committed,
            transitions: &update.states,
            entries: update.entry_redirects.as_ref(),
            timeout,
        };
        let (report, replaced) = self.swap(swap, |state, previous_states, previous_entries| {
            state.install(update_id, &targets, previous_states, previous_entries)
        })?;
        tracing::info!(
            update_id,
            label = %update.label,
            functions = report.changes.len(),
            states = report.states.len(),
            waited = ?report.waited,
            "hot update committed"
        );
        // The old values are freed here, after every thread has gone on.
        drop(replaced);
        Ok(report)
    }

    /// Undoes the last applied update at a safe point: every function it changed gets back the
    /// code and version it had before, and every state type it migrated is migrated back down.
    /// If a down migration fails, nothing changes.
    pub fn rollback(&self) -> Result<CommitReport, Error> {
        let _one_at_a_time = lock(&self.commit_lock);
        let (update_id, label, states_back, entries_back) = {
            let state = self.lock_state();
            let last = state.applied.last().ok_or(Error::NothingToRollBack)?;
            let label = state
                .history
                .iter()
                .find(|h| h.update_id == last.id)
                .map(|h| h.label.clone())
                .unwrap_or_default();
            let entries_back = last.previous_entries.clone();
            (last.id, label, last.previous_states.clone(), entries_back)
        };
        let swap = Swap {
            update_id,
            label: &label,
            action: HistoryAction::RolledBack,
            transitions: &states_back,
            entries: entries_back.as_ref(),
            timeout: self.safe_point_timeout(),
        };
        let (report, replaced) = self.swap(swap, |state, _, _| state.undo_last())?;
        tracing::info!(
            update_id,
            %label,
            functions = report.changes.len(),
            states = report.states.len(),
            "hot update rolled back"
        );
        drop(replaced);
        Ok(report)
    }

    /// The one swap of a commit or a rollback: with every participating thread parked, writes
    /// the entry redirects `swap.entries` names (one stop of every thread), migrates the state
    /// `swap.transitions` name, then, under the same locks, lets `change` write the slots (handing
    /// it the state versions and entry redirects to go back to) and records the history entry.
    /// If the migration fails, the entries get back what they had. Returns the report and the old
    /// state values, for the caller to free once it is done.
    fn swap(
        &self,
        swap: Swap<'_>,
        change: impl FnOnce(&mut TableState, TransitionSet, Option<EntrySet>) -> Vec<VersionChange>,
    ) -> Result<(CommitReport, Option<Replaced>), Error> {
        let Swap {
            update_id,
            label,
            action,
            transitions,
            entries,
            timeout,
        } = swap;
        let (outcome, waited) = at_safe_point(timeout, || {
            let (entries_before, entry_outcome) = match entries {
                Some(set) => {
                    let (before, outcome) = set_entries(set, label)?;
                    (Some(before), Some(outcome))
                }
                None => (None, None),
            };
            // The slots are gathered inside the swap, under the state lock, so a library loaded
            // meanwhile has its slots either synchronised before the swap or written by it.
            let history_entries = entry_outcome.clone();
            let previous_entries = entries_before.clone();
            let install = |migrated: Migrated| {
                let mut state = self.lock_state();
                let changes = change(&mut state, migrated.previous, previous_entries);
                state.history.push(HistoryEntry {
                    update_id,
                    label: label.to_owned(),
                    action,
                    at: SystemTime::now(),
                    changes: changes.clone(),
                    states: migrated.changes.clone(),
                    entries: history_entries,
                });
                (changes, migrated.changes)
            };
            match with_migration(transitions, label, timeout, install) {
                Ok(done) => Ok((done, entry_outcome)),
                Err(error) => {
                    if let Some(before) = &entries_before {
                        put_entries_back(before, label);
                    }
                    Err(error)
                }
            }
        })?;
        let (((changes, states), replaced), entries) = outcome?;
        let report = CommitReport {
            update_id,
            changes,
            states,
            waited,
            entries,
        };
        Ok((report, replaced))
    }
}

/// Makes the entry redirects `set`; returns what they were before and what was done.
fn set_entries(set: &EntrySet, label: &str) -> Result<(EntrySet, EntryOutcome), Error> {
    let before = EntrySet {
        targets: crate::entry::redirected_entries(),
        limits: set.limits,
    };
    // SAFETY: an `EntrySet` is only built by `Update::redirect_entries`, whose caller vouched for
    // its targets, or here from the targets redirected now (vouched for when they were set).
    let outcome =
        unsafe { crate::entry::redirect_entries(&set.targets, &set.limits) }.map_err(|source| {
            Error::EntryRedirect {
                update: label.to_owned(),
                source,
            }
        })?;
    Ok((before, outcome))
}

/// Gives the entries back what they had before a swap whose migration failed.
fn put_entries_back(before: &EntrySet, label: &str) {
    // SAFETY: these targets were redirected a moment ago, vouched for when they were set.
    if let Err(error) = unsafe { crate::entry::redirect_entries(&before.targets, &before.limits) } {
        tracing::error!(update = label, %error, "could not put the entry redirects back after a failed migration");
    }
}

/// What one swap is: which update, under which label, doing what, migrating which state types,
/// waiting how long for the threads.
struct Swap<'a> {
    update_id: u64,
    label: &'a str,
    action: HistoryAction,
    transitions: &'a TransitionSet,
    entries: Option<&'a EntrySet>,
    timeout: Duration,
}

impl TableState {
    /// The function each entry of `update` replaces, with its new code; an update naming one
    /// function twice is refused.
    fn targets_of(&mut self, update: &Update) -> Result<Vec<(usize, Code)>, Error> {
        let mut targets = Vec::with_capacity(update.entries.len());
        for (function, code) in &update.entries {
            let index = self.index_of(function);
            if targets.iter().any(|(i, _)| *i == index) {
                return Err(Error::DuplicateEntry {
                    key: function.key().to_string(),
                });
            }
            targets.push((index, *code));
        }
        Ok(targets)
    }

    /// Writes the new code of a commit to its functions' slots, gives each a new version, and
    /// remembers what they had before (and `previous_states`) for rollback.
    fn install(
        &mut self,
        update_id: u64,
        targets: &[(usize, Code)],
        previous_states: TransitionSet,
        previous_entries: Option<EntrySet>,
    ) -> Vec<VersionChange> {
        let mut changes = Vec::with_capacity(targets.len());
        let mut undo = Vec::with_capacity(targets.len());
        for &(index, code) in targets {
            let f = &mut self.functions[index];
            undo.push(Previous {
                index,
                code: f.code(),
                version: f.version,
                update_id: f.update_id,
            });
            f.install(code);
            let from = f.version;
            f.next_version += 1;
            f.version = f.next_version;
            f.update_id = Some(update_id);
            changes.push(VersionChange {
                key: f.function.key(),
                from,
                to: f.version,
            });
        }
        self.next_update_id += 1;
        self.applied.push(AppliedUpdate {
            id: update_id,
            previous: undo,
            previous_states,
            previous_entries,
        });
        changes
    }

    /// Gives every function the last applied update changed back the code and version it had
    /// before, and forgets the update.
    fn undo_last(&mut self) -> Vec<VersionChange> {
        let last = self
            .applied
            .pop()
            .expect("only rollback pops, and it holds the commit lock");
        let mut changes = Vec::with_capacity(last.previous.len());
        for previous in &last.previous {
            let f = &mut self.functions[previous.index];
            f.install(previous.code);
            changes.push(VersionChange {
                key: f.function.key(),
                from: f.version,
                to: previous.version,
            });
            f.version = previous.version;
            f.update_id = previous.update_id;
        }
        changes
    }
}

/// Runs `install` after migrating the state `transitions` name, all under the values' locks,
/// handing it what the migration did; with no transitions, just `install`. Returns its result and
/// the old values to free. Nothing changes if a migration fails.
fn with_migration<R>(
    transitions: &TransitionSet,
    label: &str,
    timeout: Duration,
    install: impl FnOnce(Migrated) -> R,
) -> Result<(R, Option<Replaced>), Error> {
    if transitions.is_empty() {
        return Ok((install(Migrated::default()), None));
    }
    let deadline = Instant::now() + timeout;
    let (result, replaced) = transitions.migrate(label, deadline, install)?;
    Ok((result, Some(replaced)))
}

/// Runs `swap` with every other participating thread parked; returns its result and the time
/// spent, waiting included.
fn at_safe_point<R>(timeout: Duration, swap: impl FnOnce() -> R) -> Result<(R, Duration), Error> {
    let started = std::time::Instant::now();
    let result = safe_point::with_threads_parked(timeout, swap).map_err(|not_arrived| {
        Error::SafePointTimeout {
            timeout,
            threads: not_arrived.threads,
        }
    })?;
    Ok((result, started.elapsed()))
}
