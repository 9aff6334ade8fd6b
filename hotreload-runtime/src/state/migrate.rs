//! Migrating every live value of changed state types at a commit, all or nothing.
//!
//! The migration takes the lock of each changed type's store (no value is added or freed
//! meanwhile) and the lock of every one of its values (no one reads or writes them meanwhile),
//! converts each value into a new allocation, and only when all succeeded swaps them in, runs the
//! rest of the commit (the slots) under the same locks, and releases them. The old values are
//! freed after that, by the caller, outside the locks. A lock it cannot take at once makes it
//! release everything and try again, until the deadline: code holding one value's lock may be
//! waiting for a store lock the migration holds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard, RwLockWriteGuard, TryLockError};
use std::time::{Duration, Instant};

use super::store::{Cell, CellData, Cells, Store};
use super::types::{convert, StateType};
use crate::error::Error;
use crate::wire::protocol::StateChange;

/// A state type to move to the version `to` describes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Transition {
    pub(crate) to: &'static StateType,
}

/// The transitions of one update.
#[derive(Clone, Debug, Default)]
pub(crate) struct TransitionSet {
    pub(crate) transitions: Vec<Transition>,
}

/// Values taken out of their cells by a migration, freed when this is dropped.
pub(crate) struct Replaced(Vec<(*mut (), &'static StateType)>);

impl Drop for Replaced {
    fn drop(&mut self) {
        for &(data, ty) in &self.0 {
            // SAFETY: each pointer was taken out of a cell, which owned it as a `ty` value; no
            // cell points at it any more.
            unsafe { (ty.drop)(data) };
        }
    }
}

// SAFETY: the values are `HotState` values, which are `Send`; nothing else reaches them.
unsafe impl Send for Replaced {}

/// What a successful migration did, handed to the rest of the commit: the changes, and the
/// versions to go back to on rollback.
#[derive(Default)]
pub(crate) struct Migrated {
    pub(crate) changes: Vec<StateChange>,
    pub(crate) previous: TransitionSet,
}

impl TransitionSet {
    pub(crate) fn is_empty(&self) -> bool {
        self.transitions.is_empty()
    }

    /// Migrates every value of every store the transitions name, then runs `commit` with what the
    /// migration did while still holding every lock, so the values and what `commit` swaps change
    /// together. Returns `commit`'s result and the old values, to free once the commit is over.
    /// Nothing changes if a migration fails or the locks are not all free by `deadline`.
    pub(crate) fn migrate<R>(
        &self,
        label: &str,
        deadline: Instant,
        commit: impl FnOnce(Migrated) -> R,
    ) -> Result<(R, Replaced), Error> {
        // A type no value was stored of yet gets its store at the version the process runs, so
        // the migration records that version to come back to.
        let stores: Vec<&'static Store> = self
            .transitions
            .iter()
            .map(|t| Store::of(super::running_type(t.to.name(), &[t.to]).unwrap_or(t.to)))
            .collect();
        let mut commit = Some(commit);
        loop {
            match self.try_migrate(label, &stores, &mut commit) {
                Attempt::Done(done) => return Ok(done),
                Attempt::Failed(error) => return Err(error),
                Attempt::Busy(name) => {
                    if Instant::now() >= deadline {
                        return Err(Error::StateBusy {
                            update: label.to_owned(),
                            name: name.to_owned(),
                        });
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }

    fn try_migrate<R>(
        &self,
        label: &str,
        stores: &[&'static Store],
        commit: &mut Option<impl FnOnce(Migrated) -> R>,
    ) -> Attempt<(R, Replaced)> {
        // Store locks first, then value locks, none of them waited for.
        let mut store_guards = match try_lock_stores(stores) {
            Ok(guards) => guards,
            Err(busy) => return Attempt::Busy(busy),
        };
        let cells: Vec<Vec<Arc<Cell>>> = store_guards
            .iter()
            .map(|guard| guard.slots.iter().flatten().cloned().collect())
            .collect();
        let mut value_guards: Vec<Vec<RwLockWriteGuard<'_, CellData>>> = Vec::new();
        for (store, cells) in stores.iter().zip(&cells) {
            let mut guards = Vec::with_capacity(cells.len());
            for cell in cells {
                match try_write_briefly(cell) {
                    Some(guard) => guards.push(guard),
                    None => return Attempt::Busy(store.name()),
                }
            }
            value_guards.push(guards);
        }

        // Convert every value; keep the old ones until all succeeded.
        let mut converted: Vec<Vec<*mut ()>> = Vec::with_capacity(stores.len());
        for ((transition, store), guards) in self.transitions.iter().zip(stores).zip(&value_guards)
        {
            let to = transition.to;
            let sources: Vec<Source> = guards
                .iter()
                .map(|guard| Source {
                    data: guard.data,
                    ty: guard.ty,
                })
                .collect();
            match convert_all(&sources, to) {
                Ok(new_values) => converted.push(new_values),
                Err((position, reason)) => {
                    free_new(&converted, &value_guards, &self.transitions);
                    return Attempt::Failed(Error::Migration {
                        update: label.to_owned(),
                        name: store.name().to_owned(),
                        from: sources[position].ty.version(),
                        to: to.version(),
                        value: position,
                        values: sources.len(),
                        reason,
                    });
                }
            }
        }

        let (migrated, replaced) = self.swap_in(converted, &mut value_guards, &mut store_guards);
        // The rest of the commit, while every value is still locked.
        let result = (commit.take().expect("a commit runs once"))(migrated);
        drop(value_guards);
        drop(store_guards);
        Attempt::Done((result, Replaced(replaced)))
    }

    /// Puts every converted value in its cell and moves every store to its new version, under
    /// the locks `try_migrate` holds. Returns what changed and the old values, to free once the
    /// commit is over.
    fn swap_in(
        &self,
        converted: Vec<Vec<*mut ()>>,
        value_guards: &mut [Vec<RwLockWriteGuard<'_, CellData>>],
        store_guards: &mut [MutexGuard<'static, Cells>],
    ) -> (Migrated, Vec<(*mut (), &'static StateType)>) {
        let mut changes = Vec::new();
        let mut previous = TransitionSet::default();
        let mut replaced = Vec::new();
        for (((transition, guards), new_values), store_guard) in self
            .transitions
            .iter()
            .zip(value_guards.iter_mut())
            .zip(converted)
            .zip(store_guards.iter_mut())
        {
            let to = transition.to;
            let from = store_guard.current;
            let mut migrated = 0;
            for (guard, data) in guards.iter_mut().zip(new_values) {
                if data != guard.data {
                    replaced.push((guard.data, guard.ty));
                    guard.data = data;
                    guard.layout = to.layout;
                    migrated += 1;
                }
                guard.ty = to;
            }
            store_guard.current = to;
            previous.transitions.push(Transition { to: from });
            changes.push(StateChange {
                name: to.name().to_owned(),
                from: from.version(),
                to: to.version(),
                values: migrated,
            });
        }
        (Migrated { changes, previous }, replaced)
    }
}

/// Takes every store's lock without waiting; the name of a store whose lock is held otherwise.
fn try_lock_stores(
    stores: &[&'static Store],
) -> Result<Vec<MutexGuard<'static, Cells>>, &'static str> {
    let mut guards = Vec::with_capacity(stores.len());
    for store in stores {
        match store.cells.try_lock() {
            Ok(guard) => guards.push(guard),
            Err(TryLockError::Poisoned(poisoned)) => guards.push(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => return Err(store.name()),
        }
    }
    Ok(guards)
}

enum Attempt<T> {
    Done(T),
    Failed(Error),
    Busy(&'static str),
}

/// Takes a value's write lock, spinning a little if it is held. The clock is read only once the
/// lock was found held: most are free, and a million clock reads would lengthen the pause.
fn try_write_briefly(cell: &Cell) -> Option<RwLockWriteGuard<'_, CellData>> {
    let mut started = None;
    loop {
        match cell.data.try_write() {
            Ok(guard) => return Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => return Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => {
                let started = *started.get_or_insert_with(Instant::now);
                if started.elapsed() > Duration::from_millis(2) {
                    return None;
                }
                std::thread::yield_now();
            }
        }
    }
}

/// Frees the values converted for the stores before the one that failed.
fn free_new(
    converted: &[Vec<*mut ()>],
    value_guards: &[Vec<RwLockWriteGuard<'_, CellData>>],
    transitions: &[Transition],
) {
    for ((new_values, guards), transition) in converted.iter().zip(value_guards).zip(transitions) {
        let olds = guards.iter().map(|guard| guard.data);
        free_converted(new_values, olds, transition.to);
    }
}

/// Frees the converted values among `new_values`: those that are not the old value itself.
fn free_converted(new_values: &[*mut ()], olds: impl Iterator<Item = *mut ()>, to: &StateType) {
    for (&data, old) in new_values.iter().zip(olds) {
        if data != old {
            // SAFETY: a fresh allocation of type `to` made by `convert`, reached by nothing else.
            unsafe { (to.drop)(data) };
        }
    }
}

/// A live value to convert, as its cell holds it.
#[derive(Clone, Copy)]
struct Source {
    data: *mut (),
    ty: &'static StateType,
}

// SAFETY: the value is a `HotState` value (`Send + Sync`) whose cell lock the migration holds for
// as long as any thread reads it.
unsafe impl Send for Source {}
// SAFETY: as above.
unsafe impl Sync for Source {}

/// Converted values, moved back from a converting thread.
struct Converted(Vec<*mut ()>);

// SAFETY: fresh allocations of `HotState` values (`Send`), owned by nothing else yet.
unsafe impl Send for Converted {}

/// Below this many values a migration runs on the committing thread alone.
const PARALLEL_FROM: usize = 16 * 1024;

/// Converts every value to `to`, in order; values already of `to`'s layout are kept as they are.
/// Large sets are split over the available cores. On the first failure, everything converted is
/// freed and the failing value's position is returned with the reason.
fn convert_all(
    sources: &[Source],
    to: &'static StateType,
) -> Result<Vec<*mut ()>, (usize, String)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads == 1 || sources.len() < PARALLEL_FROM {
        return convert_part(sources, 0, to, &AtomicBool::new(false)).map(|c| c.0);
    }
    let chunk = sources.len().div_ceil(threads);
    let failed = AtomicBool::new(false);
    let results: Vec<Result<Converted, (usize, String)>> = std::thread::scope(|scope| {
        let parts: Vec<_> = sources
            .chunks(chunk)
            .enumerate()
            .map(|(i, part)| {
                let failed = &failed;
                scope.spawn(move || convert_part(part, i * chunk, to, failed))
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
    Ok(results
        .into_iter()
        .flat_map(|r| r.map(|c| c.0).unwrap_or_default())
        .collect())
}

/// [`convert_all`] of one part, starting at `offset`; gives up early once another part failed.
fn convert_part(
    part: &[Source],
    offset: usize,
    to: &'static StateType,
    failed: &AtomicBool,
) -> Result<Converted, (usize, String)> {
    let mut out = Vec::with_capacity(part.len());
    for (i, source) in part.iter().enumerate() {
        if source.ty.layout == to.layout {
            out.push(source.data);
            continue;
        }
        if i % 1024 == 0 && failed.load(Ordering::Relaxed) {
            free_converted(&out, part.iter().map(|s| s.data), to);
            return Err((usize::MAX, "another value failed".to_owned()));
        }
        // SAFETY: the value is live and of the type `source.ty` describes; the migration holds
        // its lock.
        match unsafe { convert(source.data, source.ty, to) } {
            Ok(data) => out.push(data),
            Err(reason) => {
                failed.store(true, Ordering::Relaxed);
                free_converted(&out, part.iter().map(|s| s.data), to);
                return Err((offset + i, reason));
            }
        }
    }
    Ok(Converted(out))
}
