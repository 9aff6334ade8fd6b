//! Converting a type's live values for a migration, under the commit's deadline.
//!
//! The values are converted on a thread of their own (`hotreload-migrate`) while the committing
//! thread holds their locks and waits, until the deadline. A migration that does not return by
//! then is abandoned: the committing thread releases the locks and reports it, and the converting
//! thread is left to run (it cannot be stopped) but touches no live value again, and frees what it
//! made if it ever ends.
//!
//! A conversion reads the live value only while the older version serialises it (or, going down,
//! while the newer version's `down` runs on it); the user's `up` migration works on that
//! serialised copy. The converting thread says which value it is reading, so an abandoned
//! migration releases every lock but that value's, which stays locked for as long as the stuck
//! code may read it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::types::{convert, StateType};
use crate::sync::lock;

/// The name of the converting thread, as reports give it.
pub(crate) const CONVERTER_THREAD: &str = "hotreload-migrate";

/// A live value to convert, as its cell holds it.
#[derive(Clone, Copy)]
pub(crate) struct Source {
    pub(crate) data: *mut (),
    pub(crate) ty: &'static StateType,
}

// SAFETY: the value is a `HotState` value (`Send + Sync`) whose cell lock the migration holds for
// as long as any thread reads it (see the module documentation for an abandoned migration).
unsafe impl Send for Source {}
// SAFETY: as above.
unsafe impl Sync for Source {}

/// Converted values, moved back from a converting thread.
pub(crate) struct Converted(pub(crate) Vec<*mut ()>);

// SAFETY: fresh allocations of `HotState` values (`Send`), owned by nothing else yet.
unsafe impl Send for Converted {}

/// Why a conversion did not produce every value.
pub(crate) enum NotConverted {
    /// The migration of the value at this position failed, for this reason.
    Failed(usize, String),
    /// The deadline passed first; the positions of the values the stuck thread may still read.
    Stuck(Vec<usize>),
}

/// What the converting thread and the committing thread share.
struct Shared {
    outcome: Mutex<Outcome>,
    finished: Condvar,
    /// Set once the committing thread gave up waiting.
    abandoned: AtomicBool,
    /// Per part: 1 + the position of the live value being read, or 0.
    reading: Vec<AtomicUsize>,
}

enum Outcome {
    Running,
    Abandoned,
    Finished(Result<Converted, (usize, String)>),
}

/// Below this many values a migration runs on one converting thread.
const PARALLEL_FROM: usize = 16 * 1024;

/// Converts every value of `sources` to `to`, in order (values already of `to`'s layout are kept
/// as they are), on a converting thread, waiting until `deadline`. On a failure, everything
/// converted is freed.
pub(crate) fn convert_all_within(
    sources: Vec<Source>,
    to: &'static StateType,
    deadline: Instant,
) -> Result<Vec<*mut ()>, NotConverted> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let threads = if sources.len() < PARALLEL_FROM {
        1
    } else {
        threads
    };
    let shared = Arc::new(Shared {
        outcome: Mutex::new(Outcome::Running),
        finished: Condvar::new(),
        abandoned: AtomicBool::new(false),
        reading: (0..threads).map(|_| AtomicUsize::new(0)).collect(),
    });
    let theirs = Arc::clone(&shared);
    let spawned = std::thread::Builder::new()
        .name(CONVERTER_THREAD.into())
        .spawn(move || {
            let result = convert_all(&sources, to, threads, &theirs);
            let mut outcome = lock(&theirs.outcome);
            match *outcome {
                Outcome::Abandoned => {
                    if let Ok(converted) = result {
                        free_converted(&converted.0, sources.iter().map(|s| s.data), to);
                    }
                }
                _ => *outcome = Outcome::Finished(result),
            }
            theirs.finished.notify_all();
        });
    if let Err(error) = spawned {
        return Err(NotConverted::Failed(
            0,
            format!("could not start the migration's thread: {error}"),
        ));
    }
    wait_for(&shared, deadline)
}

/// Waits for the converting thread until `deadline`; past it, abandons the conversion.
fn wait_for(shared: &Shared, deadline: Instant) -> Result<Vec<*mut ()>, NotConverted> {
    let mut outcome = lock(&shared.outcome);
    loop {
        match std::mem::replace(&mut *outcome, Outcome::Running) {
            Outcome::Finished(result) => {
                return result
                    .map(|c| c.0)
                    .map_err(|(at, reason)| NotConverted::Failed(at, reason))
            }
            Outcome::Running | Outcome::Abandoned => {}
        }
        let now = Instant::now();
        if now >= deadline {
            *outcome = Outcome::Abandoned;
            // Paired with `read_live`: either the converting thread sees this and reads no more
            // live values, or this sees the value it reads.
            shared.abandoned.store(true, Ordering::SeqCst);
            let reading = shared
                .reading
                .iter()
                .filter_map(|r| r.load(Ordering::SeqCst).checked_sub(1))
                .collect();
            return Err(NotConverted::Stuck(reading));
        }
        outcome = shared
            .finished
            .wait_timeout(outcome, deadline - now)
            .map(|(guard, _)| guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner().0);
    }
}

/// Converts on the calling thread, or split over `threads` scoped threads.
fn convert_all(
    sources: &[Source],
    to: &'static StateType,
    threads: usize,
    shared: &Shared,
) -> Result<Converted, (usize, String)> {
    if threads == 1 {
        return convert_part(sources, 0, to, shared, &shared.reading[0]);
    }
    let chunk = sources.len().div_ceil(threads);
    let results: Vec<Result<Converted, (usize, String)>> = std::thread::scope(|scope| {
        let parts: Vec<_> = sources
            .chunks(chunk)
            .zip(&shared.reading)
            .enumerate()
            .map(|(i, (part, reading))| {
                scope.spawn(move || convert_part(part, i * chunk, to, shared, reading))
            })
            .collect();
        parts
            .into_iter()
            .map(|part| {
                part.join()
                    .unwrap_or_else(|_| Err((0, "a migration thread panicked".to_owned())))
            })
            .collect()
    });
    let first_error = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .min_by_key(|(position, _)| *position)
        .cloned();
    if let Some(error) = first_error {
        for (i, result) in results.iter().enumerate() {
            if let Ok(converted) = result {
                let olds = sources[i * chunk..].iter().map(|s| s.data);
                free_converted(&converted.0, olds, to);
            }
        }
        return Err(error);
    }
    Ok(Converted(
        results
            .into_iter()
            .flat_map(|r| r.map(|c| c.0).unwrap_or_default())
            .collect(),
    ))
}

/// [`convert_all`] of one part, starting at `offset`; gives up early once another part failed or
/// the conversion was abandoned.
fn convert_part(
    part: &[Source],
    offset: usize,
    to: &'static StateType,
    shared: &Shared,
    reading: &AtomicUsize,
) -> Result<Converted, (usize, String)> {
    let mut out = Vec::with_capacity(part.len());
    for (i, source) in part.iter().enumerate() {
        if source.ty.layout == to.layout {
            out.push(source.data);
            continue;
        }
        // Says which value it reads before looking at `abandoned` (see `wait_for`).
        reading.store(offset + i + 1, Ordering::SeqCst);
        if shared.abandoned.load(Ordering::SeqCst) {
            reading.store(0, Ordering::SeqCst);
            free_converted(&out, part.iter().map(|s| s.data), to);
            return Err((usize::MAX, "the migration was abandoned".to_owned()));
        }
        let done_reading = || reading.store(0, Ordering::SeqCst);
        // SAFETY: the value is live and of the type `source.ty` describes; the migration holds
        // its lock, and keeps holding it while `reading` names it.
        let converted = unsafe { convert(source.data, source.ty, to, &done_reading) };
        done_reading();
        match converted {
            Ok(data) => out.push(data),
            Err(reason) => {
                shared.abandoned.store(true, Ordering::SeqCst);
                free_converted(&out, part.iter().map(|s| s.data), to);
                return Err((offset + i, reason));
            }
        }
    }
    Ok(Converted(out))
}

/// Frees the converted values among `new_values`: those that are not the old value itself.
pub(crate) fn free_converted(
    new_values: &[*mut ()],
    olds: impl Iterator<Item = *mut ()>,
    to: &StateType,
) {
    for (&data, old) in new_values.iter().zip(olds) {
        if data != old {
            // SAFETY: a fresh allocation of type `to` made by `convert`, reached by nothing else.
            unsafe { (to.drop)(data) };
        }
    }
}
