//! Entry redirection on x86-64 Linux: a function's first five bytes become `jmp rel32` to a slot
//! near it (`slots.rs`), and the slot jumps to the new code. A set of functions is written in one
//! stop of every other thread (`stop.rs`, `write.rs`), after checking that none of them sits
//! inside the bytes written (`scan.rs`); a thread that blocks the stop signal is not stopped but
//! proven asleep in the kernel from before the write to after it (`foreign.rs`). A redirected
//! function is retargeted by storing its slot's target, with no stop; a restored one gets its
//! exact original bytes back.
//!
//! Calls already running finish on the code they started in; every call that starts after the
//! release, from any thread and through any caller, function pointer or vtable, reaches the target.

mod blocked;
mod code;
mod foreign;
mod scan;
mod slots;
mod stop;
mod write;

use std::sync::Mutex;
use std::time::Duration;

use super::entry_types::{EntryError, EntryLimits, EntryOutcome, EntryTarget};
use crate::sync::lock;
use code::{jump_to, read_code, Executable, JUMP_LEN};
use slots::{set_target, target_of, SlotPages};
use stop::StopError;
use write::write_stopped;

/// A function whose entry this process has redirected at some point.
struct Redirected {
    name: String,
    entry: usize,
    size: usize,
    /// The executable's bytes, put back on restore.
    original: [u8; JUMP_LEN],
    /// Its slot, kept for the process's life (a thread may be passing through it).
    slot: usize,
    /// Whether its entry jumps to the slot now.
    active: bool,
}

struct Registry {
    functions: Vec<Redirected>,
    slots: SlotPages,
    last_pause: Option<Duration>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    functions: Vec::new(),
    slots: SlotPages::new(),
    last_pause: None,
});

/// One entry to write in the stop: the jump, or the original bytes back.
struct Write {
    index: usize,
    bytes: [u8; JUMP_LEN],
    activate: bool,
}

/// Makes the entries redirected now exactly `desired`: writes a jump at each function not
/// redirected yet, stores the new target of each already redirected (no stop), and restores the
/// original bytes of each redirected function `desired` no longer lists. Names sharing one
/// address are one function. All or nothing: on an error nothing was written.
///
/// # Safety
/// Each target must be the entry of a function that may run in place of the one at its `entry`
/// (same arguments, return type and ABI), mapped for the rest of the process; the entries must be
/// function entries of the executable that nothing jumps into past the first instruction.
pub(crate) unsafe fn redirect_entries(
    desired: &[EntryTarget],
    limits: &EntryLimits,
) -> Result<EntryOutcome, EntryError> {
    let desired = merged(desired)?;
    let mut registry = lock(&REGISTRY);
    let mut retargets: Vec<(usize, usize)> = Vec::new();
    let mut writes: Vec<Write> = Vec::new();
    let executable = Executable::open()?;
    for wanted in &desired {
        let known = registry
            .functions
            .iter()
            .position(|f| f.entry == wanted.entry);
        if let Some(index) = known.filter(|&i| registry.functions[i].active) {
            let f = &registry.functions[index];
            check_still_ours(f)?;
            if target_of(f.slot) != wanted.target {
                retargets.push((f.slot, wanted.target));
            }
            continue;
        }
        let original = executable.check_entry(&wanted.name, wanted.entry, wanted.size)?;
        let index = match known {
            Some(index) => index,
            None => registry.take_slot(wanted, original)?,
        };
        let slot = registry.functions[index].slot;
        // SAFETY: no entry jumps to this slot now (the function is not redirected), so the target
        // is only reached after the jump is written; the caller vouches for the target.
        unsafe { set_target(slot, wanted.target) }
            .map_err(|e| os_error("writing a jump slot", e))?;
        let bytes = jump_to(wanted.entry, slot).expect("slots are taken within reach");
        writes.push(Write {
            index,
            bytes,
            activate: true,
        });
    }
    for (index, f) in registry.functions.iter().enumerate() {
        if f.active && !desired.iter().any(|d| d.entry == f.entry) {
            check_still_ours(f)?;
            writes.push(Write {
                index,
                bytes: f.original,
                activate: false,
            });
        }
    }
    let mut outcome = EntryOutcome {
        written: writes.iter().filter(|w| w.activate).count(),
        restored: writes.iter().filter(|w| !w.activate).count(),
        retargeted: retargets.len(),
        ..EntryOutcome::default()
    };
    if writes.is_empty() {
        for &(slot, target) in &retargets {
            // SAFETY: a slot of this registry and a target the caller vouches for.
            unsafe { set_target(slot, target) }.map_err(|e| os_error("retargeting a slot", e))?;
        }
    } else {
        // SAFETY: the writes are function entries checked above; the caller vouches for targets.
        let written = unsafe { write_stopped(&mut registry, &writes, &retargets, limits) }?;
        registry.last_pause = Some(written.pause);
        outcome.pause = Some(written.pause);
        outcome.threads = written.threads;
        outcome.foreign_threads = written.foreign;
        outcome.retries = written.retries;
    }
    outcome.redirected = registry.functions.iter().filter(|f| f.active).count();
    Ok(outcome)
}

/// The functions redirected now, with their targets.
pub(crate) fn redirected_entries() -> Vec<EntryTarget> {
    lock(&REGISTRY)
        .functions
        .iter()
        .filter(|f| f.active)
        .map(|f| EntryTarget {
            name: f.name.clone(),
            entry: f.entry,
            size: f.size,
            target: target_of(f.slot),
        })
        .collect()
}

/// How many of the process's other threads block the stop signal now: a write checks them
/// asleep instead of stopping them (`foreign.rs`).
pub(crate) fn foreign_thread_count() -> usize {
    foreign::count_blocking()
}

/// How long the last stop that wrote entries kept the other threads stopped.
pub(crate) fn last_pause() -> Option<Duration> {
    lock(&REGISTRY).last_pause
}

impl Registry {
    /// Records a function redirected for the first time, with a slot near it.
    fn take_slot(
        &mut self,
        wanted: &EntryTarget,
        original: [u8; JUMP_LEN],
    ) -> Result<usize, EntryError> {
        let slot = self
            .slots
            .take_near(wanted.entry)
            .ok_or_else(|| EntryError::NoSlotSpace {
                name: wanted.name.clone(),
            })?;
        self.functions.push(Redirected {
            name: wanted.name.clone(),
            entry: wanted.entry,
            size: wanted.size,
            original,
            slot,
            active: false,
        });
        Ok(self.functions.len() - 1)
    }
}

/// The desired entries with names sharing an address merged (their targets must agree).
fn merged(desired: &[EntryTarget]) -> Result<Vec<EntryTarget>, EntryError> {
    let mut unique: Vec<EntryTarget> = Vec::with_capacity(desired.len());
    for wanted in desired {
        match unique.iter().find(|u| u.entry == wanted.entry) {
            Some(known) if known.target != wanted.target => {
                return Err(EntryError::ConflictingTargets {
                    name: known.name.clone(),
                    other: wanted.name.clone(),
                });
            }
            Some(_) => {}
            None => unique.push(wanted.clone()),
        }
    }
    Ok(unique)
}

/// Refuses a redirected function whose entry no longer holds this module's jump.
fn check_still_ours(f: &Redirected) -> Result<(), EntryError> {
    let ours = jump_to(f.entry, f.slot).expect("slots are taken within reach");
    let found = read_code(f.entry);
    if found == ours {
        return Ok(());
    }
    Err(EntryError::Modified {
        name: f.name.clone(),
        found: code::hex(&found),
        expected: code::hex(&ours),
    })
}

fn stop_error(error: StopError, limits: &EntryLimits) -> EntryError {
    match error {
        StopError::TooLong { tid, threads } => EntryError::PauseTooLong {
            limit_us: limits.max_pause.as_micros() as u64,
            threads,
            not_stopped: tid
                .map(|tid| format!("{} (tid {tid})", crate::platform::thread_name(tid))),
        },
        StopError::BlocksStopSignal { tid, waited } => EntryError::BeganBlocking {
            tid,
            thread: crate::platform::thread_name(tid),
            waited_ms: waited.as_millis() as u64,
        },
        StopError::TooManyThreads(n) => EntryError::TooManyThreads(n),
        StopError::List(error) => EntryError::Os {
            what: "listing the process's threads (/proc/self/task)",
            error: error.to_string(),
        },
    }
}

fn os_error(what: &'static str, errno: i32) -> EntryError {
    EntryError::Os {
        what,
        error: std::io::Error::from_raw_os_error(errno).to_string(),
    }
}
