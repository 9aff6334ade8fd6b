//! Commit and rollback: both are one swap at a safe point (migrate the state types, write the
//! slots, record the history), differing only in what they write to the slots.

use std::time::{Duration, Instant, SystemTime};

use super::{AppliedUpdate, Code, Previous, Table, TableState};
use super::{CommitReport, HistoryAction, HistoryEntry, Update, VersionChange};
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
            timeout,
        };
        let (report, replaced) = self.swap(swap, |state, previous_states| {
            state.install(update_id, &targets, previous_states)
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
        let (update_id, label, states_back) = {
            let state = self.lock_state();
            let last = state.applied.last().ok_or(Error::NothingToRollBack)?;
            let label = state
                .history
                .iter()
                .find(|h| h.update_id == last.id)
                .map(|h| h.label.clone())
                .unwrap_or_default();
            (last.id, label, last.previous_states.clone())
        };
        let swap = Swap {
            update_id,
            label: &label,
            action: HistoryAction::RolledBack,
            transitions: &states_back,
            timeout: self.safe_point_timeout(),
        };
        let (report, replaced) = self.swap(swap, |state, _| state.undo_last())?;
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

    /// The one swap of a commit or a rollback: with every participating thread parked, migrates
    /// the state `swap.transitions` name, then, under the same locks, lets `change` write the
    /// slots (handing it the state versions to go back to) and records the history entry.
    /// Returns the report and the old state values, for the caller to free once it is done.
    fn swap(
        &self,
        swap: Swap<'_>,
        change: impl FnOnce(&mut TableState, TransitionSet) -> Vec<VersionChange>,
    ) -> Result<(CommitReport, Option<Replaced>), Error> {
        let Swap {
            update_id,
            label,
            action,
            transitions,
            timeout,
        } = swap;
        // The slots are gathered inside the swap, under the state lock, so a library loaded
        // meanwhile has its slots either synchronised before the swap or written by it.
        let install = |migrated: Migrated| {
            let mut state = self.lock_state();
            let changes = change(&mut state, migrated.previous);
            state.history.push(HistoryEntry {
                update_id,
                label: label.to_owned(),
                action,
                at: SystemTime::now(),
                changes: changes.clone(),
                states: migrated.changes.clone(),
            });
            (changes, migrated.changes)
        };
        let (outcome, waited) = at_safe_point(timeout, || {
            with_migration(transitions, label, timeout, install)
        })?;
        let ((changes, states), replaced) = outcome?;
        let report = CommitReport {
            update_id,
            changes,
            states,
            waited,
        };
        Ok((report, replaced))
    }
}

/// One function a commit replaces: its index, the code its slots get (maybe a contained entry)
/// and that code's plain version.
#[derive(Clone, Copy)]
struct Target {
    index: usize,
    code: Code,
    plain: Code,
}

/// What one swap is: which update, under which label, doing what, migrating which state types,
/// waiting how long for the threads.
struct Swap<'a> {
    update_id: u64,
    label: &'a str,
    action: HistoryAction,
    transitions: &'a TransitionSet,
    timeout: Duration,
}

impl TableState {
    /// The function each entry of `update` replaces, with its new code; an update naming one
    /// function twice is refused.
    fn targets_of(&mut self, update: &Update) -> Result<Vec<Target>, Error> {
        let mut targets: Vec<Target> = Vec::with_capacity(update.entries.len());
        for entry in &update.entries {
            let index = self.index_of(entry.function);
            if targets.iter().any(|target| target.index == index) {
                return Err(Error::DuplicateEntry {
                    key: entry.function.key().to_string(),
                });
            }
            targets.push(Target {
                index,
                code: entry.code,
                plain: entry.plain,
            });
        }
        Ok(targets)
    }

    /// Writes the new code of a commit to its functions' slots, gives each a new version, and
    /// remembers what they had before (and `previous_states`) for rollback.
    fn install(
        &mut self,
        update_id: u64,
        targets: &[Target],
        previous_states: TransitionSet,
    ) -> Vec<VersionChange> {
        let mut changes = Vec::with_capacity(targets.len());
        let mut undo = Vec::with_capacity(targets.len());
        for &Target { index, code, plain } in targets {
            let f = &mut self.functions[index];
            undo.push(Previous {
                index,
                code: f.code(),
                plain: f.plain,
                fallback: f.fallback,
                version: f.version,
                update_id: f.update_id,
            });
            // A call whose new code panics runs again on the code it replaces.
            f.fallback = f.plain;
            f.plain = plain;
            f.install(code, f.fallback);
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
            f.plain = previous.plain;
            f.fallback = previous.fallback;
            f.install(previous.code, previous.fallback);
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
