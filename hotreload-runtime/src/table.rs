//! The indirection table: which code each hot function runs, and the history of updates.

use std::any::{type_name, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::error::Error;
use crate::safe_point;
use crate::slot::{self, HotFunction, HotKey, HotSlot};
use crate::state::{HotState, Migrated, Replaced, StateType, Transition, TransitionSet};
use crate::sync::lock;
use crate::wire::protocol::StateChange;

/// How long a commit waits for participating threads by default.
pub const DEFAULT_SAFE_POINT_TIMEOUT: Duration = Duration::from_secs(5);

/// The process-wide table of hot functions.
///
/// All changes go through [`Table::commit`] and [`Table::rollback`], which are serialised; lookups
/// and listings never wait for a commit that is waiting for threads.
///
/// A hot function can have several slots: the binary's, and one more in each loaded patch library
/// that carries the function (the library's wrapper calls through its own copy). The table keeps
/// every distinct slot of every registration under a key whose signature is the first
/// registration's, and each commit or rollback writes the new code to all of them in the same
/// safe-point swap, so code of one patch calling a hot function reaches the newest code too.
pub struct Table {
    /// Held for a whole commit or rollback, so they happen one at a time.
    commit_lock: Mutex<()>,
    state: Mutex<TableState>,
    safe_point_timeout_ms: AtomicU64,
}

/// Code address installed in a slot. Only the table stores these, and only for the function whose
/// type they were checked (or promised, by [`Update::replace_raw`]) to have.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Code(*const ());

// SAFETY: a code address is an immutable integer-like value; it is only called through the slot.
unsafe impl Send for Code {}

struct TableState {
    functions: Vec<FunctionState>,
    by_key: HashMap<HotKey, usize>,
    /// Applied updates, oldest first; rollback pops the last.
    applied: Vec<AppliedUpdate>,
    history: Vec<HistoryEntry>,
    next_update_id: u64,
    /// The first registration seen by the last refresh.
    newest_seen: Option<&'static HotFunction>,
}

struct FunctionState {
    /// The first registration under the key: the binary's own for the binary's hot functions.
    function: &'static HotFunction,
    /// Every distinct slot registered under the key with the same signature, `function`'s first.
    slots: Vec<&'static HotSlot>,
    version: u32,
    next_version: u32,
    /// The applied update whose code the slots hold; `None` for the first registration's code.
    update_id: Option<u64>,
}

impl FunctionState {
    fn new(function: &'static HotFunction) -> Self {
        Self {
            function,
            slots: vec![function.slot()],
            version: 0,
            next_version: 0,
            update_id: None,
        }
    }

    /// The code every slot of the function holds.
    fn code(&self) -> Code {
        Code(self.function.slot().get())
    }

    /// Writes `code` to every slot of the function.
    fn install(&self, code: Code) {
        for slot in &self.slots {
            slot.set(code.0);
        }
    }
}

struct AppliedUpdate {
    id: u64,
    /// What each function it changed had before.
    previous: Vec<Previous>,
    /// The versions the state types it migrated had before.
    previous_states: TransitionSet,
}

#[derive(Clone, Copy)]
struct Previous {
    index: usize,
    code: Code,
    version: u32,
    update_id: Option<u64>,
}

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
}

/// A set of slots with new code, committed all or nothing by [`Table::commit`].
pub struct Update {
    label: String,
    entries: Vec<(&'static HotFunction, Code)>,
    states: TransitionSet,
}

impl Update {
    /// An empty update; `label` names it in the history.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            entries: Vec::new(),
            states: TransitionSet::default(),
        }
    }

    /// Migrates every live value of `T`'s name to `T`'s version at the commit, with the slots;
    /// rollback migrates them back.
    pub fn migrate<T: HotState>(self) -> Self {
        self.migrate_to(T::state_type())
    }

    /// [`Update::migrate`] with the descriptor of the version to migrate to. A later call for the
    /// same type name replaces an earlier one.
    pub fn migrate_to(mut self, to: &'static StateType) -> Self {
        self.states.transitions.retain(|t| t.to.name() != to.name());
        self.states.transitions.push(Transition { to });
        self
    }

    /// Replaces `function`'s code with `code`, a function pointer of exactly the slot's type
    /// (for example `fee_v2 as fn(u64, u64) -> u64`); any other type is refused.
    pub fn replace<F: Copy + 'static>(
        mut self,
        function: &'static HotFunction,
        code: F,
    ) -> Result<Self, Error> {
        if TypeId::of::<F>() != function.fn_type_id()
            || mem::size_of::<F>() != mem::size_of::<*const ()>()
        {
            return Err(Error::SignatureMismatch {
                key: function.key().to_string(),
                expected: function.signature(),
                found: type_name::<F>(),
            });
        }
        // SAFETY: `F` is the slot's function pointer type (same `TypeId`), which has the size of a
        // pointer, so its bits are a code address.
        let address = unsafe { mem::transmute_copy::<F, *const ()>(&code) };
        self.entries.push((function, Code(address)));
        Ok(self)
    }

    /// Replaces `function`'s code with the function at `code`, as found in a loaded library.
    ///
    /// # Safety
    /// `code` must be the address of a function of exactly the type of `function`'s slot (same
    /// arguments, return type and ABI) whose code stays mapped for the rest of the process.
    pub unsafe fn replace_raw(mut self, function: &'static HotFunction, code: *const ()) -> Self {
        self.entries.push((function, Code(code)));
        self
    }

    /// Number of functions the update replaces.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the update replaces no function and migrates no state.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.states.is_empty()
    }
}

impl fmt::Debug for Update {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Update")
            .field("label", &self.label)
            .field(
                "functions",
                &self
                    .entries
                    .iter()
                    .map(|(function, _)| function.key())
                    .collect::<Vec<_>>(),
            )
            .field("states", &self.states)
            .finish()
    }
}

impl Table {
    /// The table of this process.
    pub fn global() -> &'static Table {
        static TABLE: OnceLock<Table> = OnceLock::new();
        TABLE.get_or_init(|| Table {
            commit_lock: Mutex::new(()),
            state: Mutex::new(TableState {
                functions: Vec::new(),
                by_key: HashMap::new(),
                applied: Vec::new(),
                history: Vec::new(),
                next_update_id: 1,
                newest_seen: None,
            }),
            safe_point_timeout_ms: AtomicU64::new(DEFAULT_SAFE_POINT_TIMEOUT.as_millis() as u64),
        })
    }

    /// How long commits wait for participating threads to reach a safe point.
    pub fn safe_point_timeout(&self) -> Duration {
        Duration::from_millis(self.safe_point_timeout_ms.load(Ordering::Relaxed))
    }

    /// Sets how long commits wait for participating threads to reach a safe point.
    pub fn set_safe_point_timeout(&self, timeout: Duration) {
        let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.safe_point_timeout_ms.store(millis, Ordering::Relaxed);
    }

    /// The registered hot function with this key, as `HotKey`'s `Display` writes it
    /// (`crate::module::name`, `crate::module::Type::name`, `<crate::module::Type as Trait>::name`).
    pub fn function(&self, key: &str) -> Result<&'static HotFunction, Error> {
        let state = self.lock_state();
        state
            .functions
            .iter()
            .map(|f| f.function)
            .find(|f| f.key().to_string() == key)
            .ok_or_else(|| Error::UnknownFunction {
                key: key.to_owned(),
            })
    }

    /// Every registered hot function with its current version, ordered by key.
    pub fn functions(&self) -> Vec<FunctionInfo> {
        let state = self.lock_state();
        let mut list: Vec<FunctionInfo> = state
            .functions
            .iter()
            .map(|f| {
                let slot = f.function.slot();
                FunctionInfo {
                    key: f.function.key(),
                    signature: f.function.signature(),
                    version: f.version,
                    replaced: slot.get() != slot.original(),
                    is_async: f.function.is_async(),
                    update_id: f.update_id,
                }
            })
            .collect();
        list.sort_by_key(|f| f.key);
        list
    }

    /// Everything committed and rolled back so far, oldest first.
    pub fn history(&self) -> Vec<HistoryEntry> {
        self.lock_state().history.clone()
    }

    /// The ids of the updates applied now (committed and not rolled back), oldest first.
    pub fn applied_updates(&self) -> Vec<u64> {
        self.lock_state().applied.iter().map(|u| u.id).collect()
    }

    /// The first registration under `key`: the binary's own for the binary's hot functions, a
    /// library's for a function the binary does not have.
    pub(crate) fn first_registration(&self, key: HotKey) -> Option<&'static HotFunction> {
        let state = self.lock_state();
        state.by_key.get(&key).map(|&i| state.functions[i].function)
    }

    /// The current version of `key` and the one its next commit will give it.
    pub(crate) fn versions_of(&self, key: HotKey) -> Option<(u32, u32)> {
        let state = self.lock_state();
        state.by_key.get(&key).map(|&i| {
            let f = &state.functions[i];
            (f.version, f.next_version + 1)
        })
    }

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
            let mut targets = Vec::with_capacity(update.entries.len());
            for (function, code) in &update.entries {
                let index = state.index_of(function);
                if targets.iter().any(|(i, _)| *i == index) {
                    return Err(Error::DuplicateEntry {
                        key: function.key().to_string(),
                    });
                }
                targets.push((index, *code));
            }
            (state.next_update_id, targets)
        };

        // The slots are gathered inside the swap, under the state lock, so a library loaded
        // meanwhile has its slots either synchronised before the swap or written by it.
        let install = |migrated: Migrated| {
            let mut state = self.lock_state();
            let mut changes = Vec::with_capacity(targets.len());
            let mut undo = Vec::with_capacity(targets.len());
            for &(index, code) in &targets {
                let f = &mut state.functions[index];
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
            state.next_update_id += 1;
            state.applied.push(AppliedUpdate {
                id: update_id,
                previous: undo,
                previous_states: migrated.previous,
            });
            state.history.push(HistoryEntry {
                update_id,
                label: update.label.clone(),
                action: HistoryAction::Committed,
                at: SystemTime::now(),
                changes: changes.clone(),
                states: migrated.changes.clone(),
            });
            (changes, migrated.changes)
        };
        let (outcome, waited) = at_safe_point(timeout, || {
            with_migration(&update.states, &update.label, timeout, install)
        })?;
        let ((changes, states), replaced) = outcome?;
        tracing::info!(
            update_id,
            label = %update.label,
            functions = changes.len(),
            states = states.len(),
            ?waited,
            "hot update committed"
        );
        // The old values are freed here, after every thread has gone on.
        drop(replaced);
        Ok(CommitReport {
            update_id,
            changes,
            states,
            waited,
        })
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
        let timeout = self.safe_point_timeout();
        let install = |migrated: Migrated| {
            let mut state = self.lock_state();
            let last = state
                .applied
                .pop()
                .expect("only rollback pops, and it holds the commit lock");
            let mut changes = Vec::with_capacity(last.previous.len());
            for previous in &last.previous {
                let f = &mut state.functions[previous.index];
                f.install(previous.code);
                changes.push(VersionChange {
                    key: f.function.key(),
                    from: f.version,
                    to: previous.version,
                });
                f.version = previous.version;
                f.update_id = previous.update_id;
            }
            state.history.push(HistoryEntry {
                update_id,
                label: label.clone(),
                action: HistoryAction::RolledBack,
                at: SystemTime::now(),
                changes: changes.clone(),
                states: migrated.changes.clone(),
            });
            (changes, migrated.changes)
        };
        let (outcome, waited) = at_safe_point(timeout, || {
            with_migration(&states_back, &label, timeout, install)
        })?;
        let ((changes, states), replaced) = outcome?;
        tracing::info!(
            update_id,
            %label,
            functions = changes.len(),
            states = states.len(),
            "hot update rolled back"
        );
        drop(replaced);
        Ok(CommitReport {
            update_id,
            changes,
            states,
            waited,
        })
    }

    /// Locks the state, first taking in functions registered since the last look (a library
    /// loaded since then adds its own).
    fn lock_state(&self) -> MutexGuard<'_, TableState> {
        let mut state = lock(&self.state);
        state.refresh();
        state
    }
}

impl TableState {
    fn refresh(&mut self) {
        // inventory prepends: registrations made since the last look come before the first
        // entry seen then.
        let mut fresh: Vec<&'static HotFunction> = Vec::new();
        for function in slot::registered() {
            if self
                .newest_seen
                .is_some_and(|seen| std::ptr::eq(seen, function))
            {
                break;
            }
            fresh.push(function);
        }
        if let Some(first) = fresh.first() {
            self.newest_seen = Some(*first);
        }
        for function in fresh.into_iter().rev() {
            self.take_in(function);
        }
    }

    /// Adds a registration: a new key becomes a new function; under a known key, a registration
    /// with the same signature adds its slot (a loaded library's copy, which calls through it) and
    /// gets the code the function runs now. One with another signature is left out: writing the
    /// key's code into it would call that code with the wrong arguments.
    fn take_in(&mut self, function: &'static HotFunction) -> usize {
        let Some(&index) = self.by_key.get(&function.key()) else {
            self.by_key.insert(function.key(), self.functions.len());
            self.functions.push(FunctionState::new(function));
            return self.functions.len() - 1;
        };
        let f = &mut self.functions[index];
        let slot = function.slot();
        if f.slots.iter().any(|known| std::ptr::eq(*known, slot)) {
            return index;
        }
        if function.fingerprint() != f.function.fingerprint() {
            tracing::debug!(
                key = %function.key(),
                signature = function.signature(),
                table_signature = f.function.signature(),
                "registration with another signature left out of the table"
            );
            return index;
        }
        slot.set(f.code().0);
        f.slots.push(slot);
        index
    }

    fn index_of(&mut self, function: &'static HotFunction) -> usize {
        if let Some(&index) = self.by_key.get(&function.key()) {
            return index;
        }
        // Not registered through inventory (built by hand): take it in.
        self.take_in(function)
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
