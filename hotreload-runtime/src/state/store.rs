//! Host-owned storage of `#[hot_state]` values: one store per type name, one cell per value.
//!
//! A cell holds a pointer to the value, the descriptor of the version it has and that version's
//! layout fingerprint, under a lock. Handles point at cells, so a migration that replaces a
//! value's allocation leaves every handle valid. A store lists its cells so a migration finds
//! every live value; its lock is held while values are added or freed and for a whole migration.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::RwLockWriteGuard;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard};

use super::types::{convert, HotState, StateError, StateType};
use crate::sync::lock;

/// A value's slot: what it is now.
pub(crate) struct CellData {
    pub(crate) layout: u64,
    pub(crate) data: *mut (),
    pub(crate) ty: &'static StateType,
}

// SAFETY: the pointee is a `HotState` value, which is `Send + Sync`, reached only under the lock.
unsafe impl Send for CellData {}
// SAFETY: as above.
unsafe impl Sync for CellData {}

pub(crate) struct Cell {
    pub(crate) data: RwLock<CellData>,
    store: &'static Store,
    index: usize,
}

impl Drop for CellData {
    fn drop(&mut self) {
        // SAFETY: `data` came from `Box::into_raw` of the type `ty` describes, and the cell is
        // its only owner.
        unsafe { (self.ty.drop)(self.data) }
    }
}

/// The values of one state type name.
pub(crate) struct Store {
    name: &'static str,
    pub(crate) cells: Mutex<Cells>,
}

pub(crate) struct Cells {
    /// The version values are kept at: new values are converted to it.
    pub(crate) current: &'static StateType,
    pub(crate) slots: Vec<Option<Arc<Cell>>>,
    free: Vec<usize>,
    named: HashMap<&'static str, usize>,
    live: usize,
}

static STORES: Mutex<Vec<&'static Store>> = Mutex::new(Vec::new());

impl Store {
    /// The store of `ty`'s name, made (at `ty`'s version) if it has none yet.
    pub(crate) fn of(ty: &'static StateType) -> &'static Store {
        let mut stores = lock(&STORES);
        if let Some(store) = stores.iter().find(|s| s.name == ty.name) {
            return store;
        }
        let store: &'static Store = Box::leak(Box::new(Store {
            name: ty.name,
            cells: Mutex::new(Cells {
                current: ty,
                slots: Vec::new(),
                free: Vec::new(),
                named: HashMap::new(),
                live: 0,
            }),
        }));
        stores.push(store);
        store
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn current(&self) -> &'static StateType {
        lock(&self.cells).current
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.cells).live
    }

    /// Stores `value`, of the version `ty` describes, converting it to the store's version first.
    /// With `name`, stores it as that singleton unless the singleton exists already.
    fn insert(
        &'static self,
        ty: &'static StateType,
        data: *mut (),
        name: Option<&'static str>,
    ) -> Result<Arc<Cell>, StateError> {
        let mut cells = lock(&self.cells);
        if let Some(index) = name.and_then(|name| cells.named.get(name).copied()) {
            // SAFETY: `data` is the caller's fresh value of type `ty`, not stored.
            unsafe { (ty.drop)(data) };
            return Ok(cells.slots[index]
                .clone()
                .expect("named cells are never freed"));
        }
        let current = cells.current;
        let (ty, data) = if std::ptr::eq(ty, current) || ty.layout == current.layout {
            (ty, data)
        } else {
            // SAFETY: `data` is a live value of type `ty`, which this call owns.
            let converted = unsafe { convert(data, ty, current, &|| {}) };
            // SAFETY: as above; the conversion only read it.
            unsafe { (ty.drop)(data) };
            let converted = converted.map_err(|reason| StateError::Convert {
                name: self.name,
                from: ty.version,
                to: current.version,
                reason,
            })?;
            (current, converted)
        };
        let index = cells.free.pop().unwrap_or(cells.slots.len());
        let cell = Arc::new(Cell {
            data: RwLock::new(CellData {
                layout: ty.layout,
                data,
                ty,
            }),
            store: self,
            index,
        });
        if index == cells.slots.len() {
            cells.slots.push(Some(cell.clone()));
        } else {
            cells.slots[index] = Some(cell.clone());
        }
        if let Some(name) = name {
            cells.named.insert(name, index);
        }
        cells.live += 1;
        Ok(cell)
    }

    fn remove(&self, index: usize) -> Option<Arc<Cell>> {
        let mut cells = lock(&self.cells);
        let cell = cells.slots.get_mut(index)?.take()?;
        cells.free.push(index);
        cells.live -= 1;
        Some(cell)
    }
}

/// Every store, in the order they were made.
pub(crate) fn all_stores() -> Vec<&'static Store> {
    lock(&STORES).clone()
}

/// A `#[hot_state]` value kept in the runtime's storage. Dropping the handle frees the value.
///
/// The handle stays valid across patches: a migration replaces the value behind it. It has the
/// same layout whatever the version of `T`, so hot functions can take `&Handle<T>` across patches
/// that change `T`.
pub struct Handle<T: HotState> {
    cell: Arc<Cell>,
    owned: bool,
    _type: PhantomData<fn() -> T>,
}

impl<T: HotState> Handle<T> {
    /// Stores `value`. When a patch has moved `T` to another version than this code's, the value
    /// is migrated to it first.
    ///
    /// # Panics
    /// If that migration fails; [`Handle::try_new`] returns the error instead.
    pub fn new(value: T) -> Self {
        Self::try_new(value).unwrap_or_else(|error| panic!("{error}"))
    }

    /// [`Handle::new`], returning a failed migration as an error.
    pub fn try_new(value: T) -> Result<Self, StateError> {
        let ty = T::state_type();
        let data = Box::into_raw(Box::new(value)).cast();
        let cell = Store::of(ty).insert(ty, data, None)?;
        Ok(Self {
            cell,
            owned: true,
            _type: PhantomData,
        })
    }

    /// Shared access, after checking the value has this code's version.
    pub fn read(&self) -> Result<StateRef<'_, T>, StateError> {
        let guard = self
            .cell
            .data
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        check::<T>(&guard)?;
        Ok(StateRef {
            guard,
            _type: PhantomData,
        })
    }

    /// Exclusive access, after checking the value has this code's version.
    pub fn write(&self) -> Result<StateMut<'_, T>, StateError> {
        let guard = self
            .cell
            .data
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        check::<T>(&guard)?;
        Ok(StateMut {
            guard,
            _type: PhantomData,
        })
    }

    /// Takes the value's lock without checking its version: hand the [`Locked`] to hot code, which
    /// checks it with [`Locked::get_mut`]. A commit cannot swap the value (nor the slots with it)
    /// while the lock is held, so the hot code called under it matches the value.
    pub fn lock(&self) -> Locked<'_, T> {
        Locked {
            guard: self
                .cell
                .data
                .write()
                .unwrap_or_else(PoisonError::into_inner),
            _type: PhantomData,
        }
    }

    /// The version the value has now.
    pub fn version(&self) -> u32 {
        self.cell
            .data
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .ty
            .version
    }
}

impl<T: HotState> Drop for Handle<T> {
    fn drop(&mut self) {
        if self.owned {
            // The value is freed when the last reference to the cell (this one) goes.
            self.cell.store.remove(self.cell.index);
        }
    }
}

impl<T: HotState> std::fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("type", &T::NAME)
            .field("index", &self.cell.index)
            .finish()
    }
}

fn check<T: HotState>(data: &CellData) -> Result<(), StateError> {
    if data.layout == T::LAYOUT {
        return Ok(());
    }
    Err(StateError::Version {
        name: T::NAME,
        code_version: T::VERSION,
        value_version: data.ty.version,
    })
}

/// Shared access to a value; holds its lock.
pub struct StateRef<'a, T> {
    guard: RwLockReadGuard<'a, CellData>,
    _type: PhantomData<&'a T>,
}

impl<T> Deref for StateRef<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the layout fingerprint was checked equal to `T`'s when the guard was taken, and
        // the value cannot change type while the guard holds the lock.
        unsafe { &*self.guard.data.cast::<T>() }
    }
}

/// Exclusive access to a value; holds its lock.
pub struct StateMut<'a, T> {
    guard: RwLockWriteGuard<'a, CellData>,
    _type: PhantomData<&'a mut T>,
}

impl<T> Deref for StateMut<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: as for `StateRef`.
        unsafe { &*self.guard.data.cast::<T>() }
    }
}

impl<T> DerefMut for StateMut<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `StateRef`; the write guard makes the access exclusive.
        unsafe { &mut *self.guard.data.cast::<T>() }
    }
}

/// A value's lock, taken without checking the version: [`Locked::get`] and [`Locked::get_mut`]
/// check it. Pass `&mut Locked<T>` to hot functions; see [`Handle::lock`].
pub struct Locked<'a, T> {
    guard: RwLockWriteGuard<'a, CellData>,
    _type: PhantomData<&'a mut T>,
}

impl<T: HotState> Locked<'_, T> {
    /// The value, if it has this code's version.
    pub fn get(&self) -> Result<&T, StateError> {
        check::<T>(&self.guard)?;
        // SAFETY: checked just now; the guard keeps the value's type.
        Ok(unsafe { &*self.guard.data.cast::<T>() })
    }

    /// The value, mutably, if it has this code's version.
    pub fn get_mut(&mut self) -> Result<&mut T, StateError> {
        check::<T>(&self.guard)?;
        // SAFETY: checked just now; the write guard makes the access exclusive.
        Ok(unsafe { &mut *self.guard.data.cast::<T>() })
    }

    /// The version the value has.
    pub fn version(&self) -> u32 {
        self.guard.ty.version
    }
}

/// One named value of a `#[hot_state]` type, for what would otherwise be a `static`:
///
/// ```
/// # use hotreload_runtime::{hot_state, state::Singleton};
/// # use serde::{Deserialize, Serialize};
/// #[hot_state(version = 1)]
/// #[derive(Serialize, Deserialize, Default)]
/// pub struct Totals { pub requests: u64 }
///
/// static TOTALS: Singleton<Totals> = Singleton::new("totals", Totals::default);
///
/// TOTALS.write().unwrap().requests += 1;
/// ```
///
/// The value lives in the runtime's storage under its type and name, so a patch's copy of the
/// `static` reaches the same value, and it is migrated like any other.
pub struct Singleton<T: HotState> {
    name: &'static str,
    init: fn() -> T,
    /// The descriptor of what `init` makes: a patch's code may reach the host's `static`, whose
    /// `init` makes the host's version of `T`.
    init_type: fn() -> &'static StateType,
    handle: OnceLock<Handle<T>>,
}

impl<T: HotState> Singleton<T> {
    /// The singleton `name` of `T`, made by `init` on first use.
    pub const fn new(name: &'static str, init: fn() -> T) -> Self {
        Self {
            name,
            init,
            init_type: T::state_type,
            handle: OnceLock::new(),
        }
    }

    /// Its handle.
    ///
    /// # Panics
    /// If the value had to be migrated to the version `T` is kept at and that failed.
    pub fn handle(&self) -> &Handle<T> {
        self.handle.get_or_init(|| {
            let ty = (self.init_type)();
            let data = Box::into_raw(Box::new((self.init)())).cast();
            let cell = Store::of(ty)
                .insert(ty, data, Some(self.name))
                .unwrap_or_else(|error| panic!("singleton `{}`: {error}", self.name));
            Handle {
                cell,
                owned: false,
                _type: PhantomData,
            }
        })
    }

    /// Shared access; see [`Handle::read`].
    pub fn read(&self) -> Result<StateRef<'_, T>, StateError> {
        self.handle().read()
    }

    /// Exclusive access; see [`Handle::write`].
    pub fn write(&self) -> Result<StateMut<'_, T>, StateError> {
        self.handle().write()
    }

    /// The lock without the version check; see [`Handle::lock`].
    pub fn lock(&self) -> Locked<'_, T> {
        self.handle().lock()
    }
}
