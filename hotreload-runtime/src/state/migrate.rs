//! Migrating every live value of changed state types at a commit, all or nothing.
//!
//! The migration takes the lock of each changed type's store (no value is added or freed
//! meanwhile) and the lock of every one of its values (no one reads or writes them meanwhile),
//! converts each value into a new allocation, and only when all succeeded swaps them in, runs the
//! rest of the commit (the slots) under the same locks, and releases them. The old values are
//! freed after that, by the caller, outside the locks. A lock it cannot take at once makes it
//! release everything and try again, until the deadline: code holding one value's lock may be
//! waiting for a store lock the migration holds. The conversion itself is bounded by the same
//! deadline (see `convert.rs`): a migration that has not returned by then abandons the commit.

use std::sync::{Arc, MutexGuard, RwLockWriteGuard, TryLockError};
use std::time::{Duration, Instant};

use super::convert::{convert_all_within, free_converted, NotConverted, Source, CONVERTER_THREAD};
use super::store::{Cell, CellData, Cells, Store};
use super::types::StateType;
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
        let started = Instant::now();
        loop {
            match self.try_migrate(label, &stores, deadline, &mut commit) {
                Attempt::Done(done) => return Ok(done),
                Attempt::Failed(error) => return Err(error),
                Attempt::Stuck(stuck) => return Err(stuck.into_error(label, started.elapsed())),
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
        deadline: Instant,
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
        let converted =
            match self.convert_values(label, stores, &cells, &mut value_guards, deadline) {
                Ok(converted) => converted,
                Err(not_done) => return not_done,
            };

        let (migrated, replaced) = self.swap_in(converted, &mut value_guards, &mut store_guards);
        // The rest of the commit, while every value is still locked.
        let result = (commit.take().expect("a commit runs once"))(migrated);
        drop(value_guards);
        drop(store_guards);
        Attempt::Done((result, Replaced(replaced)))
    }

    /// Converts the values of every transition's store (their guards held) until `deadline`; on a
    /// failure or past the deadline, frees what was converted and says how the attempt ends.
    fn convert_values<T>(
        &self,
        label: &str,
        stores: &[&'static Store],
        cells: &[Vec<Arc<Cell>>],
        value_guards: &mut [Vec<RwLockWriteGuard<'_, CellData>>],
        deadline: Instant,
    ) -> Result<Vec<Vec<*mut ()>>, Attempt<T>> {
        let mut converted: Vec<Vec<*mut ()>> = Vec::with_capacity(stores.len());
        for (t, (transition, store)) in self.transitions.iter().zip(stores).enumerate() {
            let to = transition.to;
            let sources: Vec<Source> = value_guards[t]
                .iter()
                .map(|guard| Source {
                    data: guard.data,
                    ty: guard.ty,
                })
                .collect();
            let values = sources.len();
            let from = sources.first().map_or(to.version(), |s| s.ty.version());
            let not_converted = match convert_all_within(sources, to, deadline) {
                Ok(new_values) => {
                    converted.push(new_values);
                    continue;
                }
                Err(not_converted) => not_converted,
            };
            free_new(&converted, value_guards, &self.transitions);
            return Err(match not_converted {
                NotConverted::Failed(position, reason) => Attempt::Failed(Error::Migration {
                    update: label.to_owned(),
                    name: store.name().to_owned(),
                    from: value_guards[t]
                        .get(position)
                        .map_or(from, |guard| guard.ty.version()),
                    to: to.version(),
                    value: position,
                    values,
                    reason,
                }),
                NotConverted::Stuck(reading) => Attempt::Stuck(StuckMigration {
                    name: store.name(),
                    from,
                    to: to.version(),
                    kept_locked: keep_locked(&mut value_guards[t], &cells[t], &reading),
                }),
            });
        }
        Ok(converted)
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
    Stuck(StuckMigration),
}

/// A migration abandoned at the deadline, its converting thread still running.
struct StuckMigration {
    name: &'static str,
    from: u32,
    to: u32,
    /// The positions of the values left locked: the stuck code may still read them.
    kept_locked: Vec<usize>,
}

impl StuckMigration {
    fn into_error(self, label: &str, waited: Duration) -> Error {
        Error::MigrationStuck {
            update: label.to_owned(),
            name: self.name.to_owned(),
            from: self.from,
            to: self.to,
            waited,
            thread: CONVERTER_THREAD,
            kept_locked: self.kept_locked,
        }
    }
}

/// Leaves locked, for the rest of the process, the values at `positions` (which the stuck
/// converting thread may still read) and keeps their cells alive; the other guards are dropped by
/// the caller. Returns the positions.
fn keep_locked(
    guards: &mut Vec<RwLockWriteGuard<'_, CellData>>,
    cells: &[Arc<Cell>],
    positions: &[usize],
) -> Vec<usize> {
    let mut kept = Vec::new();
    for (position, guard) in std::mem::take(guards).into_iter().enumerate() {
        if positions.contains(&position) {
            std::mem::forget(guard);
            std::mem::forget(Arc::clone(&cells[position]));
            kept.push(position);
        }
    }
    kept
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
