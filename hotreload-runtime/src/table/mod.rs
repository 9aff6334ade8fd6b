//! The indirection table: which code each hot function runs, and the history of updates.
//!
//! This file keeps the table's state and its lookups; [`Update`] is built in `update.rs`, the
//! reports it gives in `history.rs`, and commits and rollbacks share one swap in `swap.rs`.

mod history;
mod swap;
mod update;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::error::Error;
use crate::slot::{self, HotFunction, HotKey, HotSlot};
use crate::state::TransitionSet;
use crate::sync::lock;

pub use history::{CommitReport, FunctionInfo, HistoryAction, HistoryEntry, VersionChange};
pub use update::Update;

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
    /// The entry redirects before it, if it set them.
    previous_entries: Option<EntrySet>,
}

/// The functions whose entries a commit redirects (all of them: the ones left out are restored),
/// and the bounds of the stop that writes them.
#[derive(Clone)]
struct EntrySet {
    targets: Vec<crate::entry::EntryTarget>,
    limits: crate::entry::EntryLimits,
}

#[derive(Clone, Copy)]
struct Previous {
    index: usize,
    code: Code,
    version: u32,
    update_id: Option<u64>,
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
