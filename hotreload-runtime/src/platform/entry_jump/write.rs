//! One write of entries: every other thread stopped (`stop.rs`), or, for a thread that blocks
//! the stop signal, proven asleep in the kernel from before the write to after it
//! (`foreign.rs`); none of them inside the bytes written (`scan.rs`). An attempt that cannot
//! prove it is given up (a write already made is undone, the threads still stopped) and retried
//! within `EntryLimits::retry_for`.

use std::time::{Duration, Instant};

use super::code::{self, make_writable, prepare_sync_cores, read_code, sync_cores, write_code};
use super::foreign::{ForeignThreads, Unproven};
use super::scan::Scanner;
use super::slots::set_target;
use super::stop::{list_tasks, Stop, StopError, TaskList};
use super::{os_error, stop_error, Registry, Write, JUMP_LEN};
use crate::platform::entry_types::{EntryError, EntryLimits};

/// What the write that went through did.
pub(super) struct Written {
    /// From the first signal to the release.
    pub(super) pause: Duration,
    /// Other threads: stopped, or checked asleep.
    pub(super) threads: usize,
    /// Of those, the ones checked asleep (they block the stop signal).
    pub(super) foreign: usize,
    /// Attempts given up before it.
    pub(super) retries: u32,
}

/// The bytes each write replaces, and where: what an attempt puts back when it is given up.
struct Entries<'a> {
    at: Vec<usize>,
    before: Vec<[u8; JUMP_LEN]>,
    pages: Vec<(usize, usize)>,
    writes: &'a [Write],
}

/// Stops the other threads until none is inside the bytes written and every thread that blocks
/// the stop signal is proven asleep throughout (retrying within `limits.retry_for`), writes
/// every entry and retarget, and releases them.
///
/// # Safety
/// Each write must be a function entry of the executable checked for room and bytes; each
/// retarget a slot of the registry and a valid target.
pub(super) unsafe fn write_stopped(
    registry: &mut Registry,
    writes: &[Write],
    retargets: &[(usize, usize)],
    limits: &EntryLimits,
) -> Result<Written, EntryError> {
    let at: Vec<usize> = writes
        .iter()
        .map(|w| registry.functions[w.index].entry)
        .collect();
    let entries = Entries {
        before: at.iter().map(|&entry| read_code(entry)).collect(),
        pages: code::page_ranges(&at),
        at,
        writes,
    };
    let mut scanner = Scanner::new(entries.at.iter().copied())?;
    let mut tasks = TaskList::new();
    let mut foreign = ForeignThreads::new();
    let started = Instant::now();
    let mut retries = 0u32;
    let mut foreign_ran_every_time = true;
    loop {
        list_tasks(&mut tasks).map_err(|e| stop_error(StopError::List(e), limits))?;
        foreign.classify(&tasks)?;
        if foreign.len() > 0 {
            prepare_sync_cores();
        }
        let Some(stop) = begin_stop(&mut tasks, &foreign, limits, started)? else {
            retries += 1;
            continue;
        };
        let parked_inside = stop.threads().find_map(|thread| {
            let entry = scanner.entry_inside(&thread)?;
            Some(Unproven::Inside {
                entry,
                tid: thread.tid,
            })
        });
        let attempt = match parked_inside {
            Some(inside) => Ok(Err(inside)),
            // SAFETY: every thread not in `foreign` is stopped outside the bytes; the caller's
            // promise for the rest.
            None => unsafe { write_checked(&entries, &mut foreign, &mut scanner) },
        };
        let unproven = match attempt {
            Ok(Ok(())) => {
                let stopped = stop.threads().count();
                // SAFETY: the caller's promise.
                let finished = unsafe { finish(stop, registry, writes, retargets) };
                return finished.map(|pause| Written {
                    pause,
                    threads: stopped + foreign.len(),
                    foreign: foreign.len(),
                    retries,
                });
            }
            Ok(Err(unproven)) => unproven,
            Err(error) => return Err(error),
        };
        drop(stop);
        foreign_ran_every_time &= matches!(unproven, Unproven::Ran { .. });
        if started.elapsed() >= limits.retry_for {
            let tries = retries + 1;
            let waited_ms = started.elapsed().as_millis() as u64;
            return Err(refusal(
                registry,
                unproven,
                tries,
                waited_ms,
                foreign_ran_every_time,
            ));
        }
        retries += 1;
        std::thread::sleep(Duration::from_millis(u64::from(retries.min(10))));
    }
}

/// Stops every thread but `foreign`'s; `None` when one began blocking the stop signal after
/// they were classified (classify again), unless that has gone on past `retry_for`.
fn begin_stop(
    tasks: &mut TaskList,
    foreign: &ForeignThreads,
    limits: &EntryLimits,
    started: Instant,
) -> Result<Option<Stop>, EntryError> {
    match Stop::begin(limits.max_pause, tasks, foreign.tids()) {
        Ok(stop) => Ok(Some(stop)),
        Err(StopError::BlocksStopSignal { tid, .. }) => {
            let waited = started.elapsed();
            if waited < limits.retry_for {
                return Ok(None);
            }
            let error = StopError::BlocksStopSignal { tid, waited };
            Err(stop_error(error, limits))
        }
        Err(error) => Err(stop_error(error, limits)),
    }
}

/// With the entries written: stores every retarget, releases the threads and records the
/// entries written. Returns the pause.
///
/// # Safety
/// As [`write_stopped`].
unsafe fn finish(
    stop: Stop,
    registry: &mut Registry,
    writes: &[Write],
    retargets: &[(usize, usize)],
) -> Result<Duration, EntryError> {
    for &(slot, target) in retargets {
        // SAFETY: the caller's promise. A slot's page stays executable, so a failure leaves the
        // slot at its old target; the entries stay written (each goes to valid code), as the
        // registry records below.
        if let Err(errno) = unsafe { set_target(slot, target) } {
            drop(stop);
            mark_written(registry, writes);
            return Err(os_error("retargeting a slot", errno));
        }
    }
    let pause = stop.release();
    mark_written(registry, writes);
    Ok(pause)
}

/// With every thread but the foreign ones stopped outside the bytes: checks the foreign ones
/// asleep outside them, writes, and checks they stayed asleep; if they did not, puts the bytes
/// back. Code pages are writable only meanwhile (made so first, to keep the time between the
/// first check and the write short). `Ok(Err)`: given up, nothing changed.
///
/// # Safety
/// As [`write_stopped`], with every thread not in `foreign` stopped outside the bytes written.
unsafe fn write_checked(
    entries: &Entries<'_>,
    foreign: &mut ForeignThreads,
    scanner: &mut Scanner,
) -> Result<Result<(), Unproven>, EntryError> {
    // SAFETY: whole code pages; no thread runs in the bytes (the caller's promise, and the
    // checks below before anything is written).
    if let Err(errno) = unsafe { make_writable(&entries.pages, true) } {
        // SAFETY: as above; gives back any range already made writable its protection.
        let _ = unsafe { make_writable(&entries.pages, false) };
        return Err(os_error("making the executable's code writable", errno));
    }
    let mut checked = foreign
        .check_before(scanner)
        .and_then(|()| foreign.confirm_before());
    if checked.is_ok() {
        for (write, &entry) in entries.writes.iter().zip(&entries.at) {
            // SAFETY: the page is writable and no thread runs these bytes (checked above).
            unsafe { write_code(entry, &write.bytes) };
        }
        if foreign.len() > 0 {
            sync_cores();
        }
        checked = foreign.check_after();
    }
    // SAFETY: as above.
    let protected = unsafe { make_writable(&entries.pages, false) };
    if checked.is_err() || protected.is_err() {
        // A foreign thread ran during the write: a timer, I/O or another process woke it (this
        // process's other threads are all stopped). The bytes are put back exactly; as the
        // module `foreign` says, the write could not be proven safe for it, only detected.
        // Undone the same way if the pages could not be made read-only again: the write must
        // not stay half recorded.
        // SAFETY: as above; the pages are made writable again for the undo.
        unsafe { undo(entries) };
        if foreign.len() > 0 {
            sync_cores();
        }
    }
    if let Err(errno) = protected {
        return Err(os_error(
            "making the executable's code read-only again",
            errno,
        ));
    }
    Ok(checked)
}

/// Puts back the bytes each write replaced.
///
/// # Safety
/// As [`write_checked`].
unsafe fn undo(entries: &Entries<'_>) {
    // SAFETY: the caller's promise. The pages were writable moments ago; if they cannot be made
    // so again, nothing can be written back.
    if unsafe { make_writable(&entries.pages, true) }.is_ok() {
        for (bytes, &entry) in entries.before.iter().zip(&entries.at) {
            // SAFETY: the page is writable; the caller's promise for the rest.
            unsafe { write_code(entry, bytes) };
        }
    }
    // SAFETY: as above.
    let _ = unsafe { make_writable(&entries.pages, false) };
}

fn mark_written(registry: &mut Registry, writes: &[Write]) {
    for write in writes {
        registry.functions[write.index].active = write.activate;
    }
}

/// Why the write was given up for good, after `tries` attempts.
fn refusal(
    registry: &Registry,
    unproven: Unproven,
    tries: u32,
    waited_ms: u64,
    every_time: bool,
) -> EntryError {
    let thread = |tid| crate::platform::thread_name(tid);
    match unproven {
        Unproven::Inside { entry, tid } => EntryError::ThreadInside {
            name: registry
                .functions
                .iter()
                .find(|f| f.entry == entry)
                .map_or_else(String::new, |f| f.name.clone()),
            tid,
            thread: thread(tid),
            tries,
            waited_ms,
        },
        Unproven::Ran { tid } => EntryError::ForeignThreadRunning {
            tid,
            thread: thread(tid),
            every_time,
            tries,
            waited_ms,
        },
    }
}
