//! Versioned state that survives patches: `#[hot_state]` types, their storage and their migrations.
//!
//! ```
//! use hotreload_runtime::{hot_state, state::Handle};
//! use serde::{Deserialize, Serialize};
//!
//! #[hot_state(version = 1)]
//! #[derive(Serialize, Deserialize)]
//! pub struct Session {
//!     pub user: String,
//!     pub requests: u64,
//! }
//!
//! let session = Handle::new(Session { user: "ada".into(), requests: 0 });
//! session.write().unwrap().requests += 1;
//! assert_eq!(session.read().unwrap().requests, 1);
//! ```
//!
//! # Where values live
//!
//! Values of a `#[hot_state]` type live in storage the runtime owns, not in code a patch replaces:
//! - [`Handle<T>`] for many instances (sessions, connections, orders): `Handle::new(value)` stores
//!   it; dropping the handle frees it;
//! - [`Singleton<T>`] for one named value, what would otherwise be a `static`.
//!
//! # Versions and access
//!
//! `#[hot_state(version = N)]` gives the type a version and a layout fingerprint computed at compile
//! time (the shape of its fields and its size and alignment). Every access compares the value's
//! fingerprint with the one the accessing code was compiled with: one comparison, under the value's
//! own lock. Code compiled against another version (old code still running after a patch migrated
//! the values) gets [`StateError::Version`], naming the type and both versions, never a misread
//! value.
//!
//! # Migrations
//!
//! A patch that changes a `#[hot_state]` type's layout must raise its version, and the new version
//! names the previous one, kept in the source as a plain serde type marked `snapshot`:
//!
//! ```
//! use hotreload_runtime::{hot_state, state::{Migrate, MigrationError}};
//! use serde::{Deserialize, Serialize};
//!
//! /// Version 1, kept to migrate from.
//! #[hot_state(version = 1, snapshot)]
//! #[derive(Serialize, Deserialize)]
//! pub struct SessionV1 {
//!     pub user: String,
//!     pub requests: u32,
//! }
//!
//! #[hot_state(version = 2, previous = SessionV1)]
//! #[derive(Serialize, Deserialize)]
//! pub struct Session {
//!     pub user: String,
//!     pub requests: u64,
//!     pub tier: String,
//! }
//!
//! impl Migrate<SessionV1> for Session {
//!     fn up(old: SessionV1) -> Result<Self, MigrationError> {
//!         Ok(Session { user: old.user, requests: old.requests.into(), tier: "free".into() })
//!     }
//!     fn down(&self) -> Result<SessionV1, MigrationError> {
//!         let requests = u32::try_from(self.requests).map_err(MigrationError::new)?;
//!         Ok(SessionV1 { user: self.user.clone(), requests })
//!     }
//! }
//! ```
//!
//! At commit, at the safe point, every live value of each changed type is serialised by the code
//! of its version, carried up (or down, on rollback) the chain of migrations, and deserialised into
//! the new version; versions further back chain through their own snapshots. Access to those values
//! waits meanwhile. If any migration returns an error or panics, every value keeps its old version
//! and the patch is refused; old values are freed only after every migration has succeeded.
//! A snapshot's version 1 has no `previous`; a live type of version 2 or more without one is a
//! compile error, and a missing `Migrate` implementation too.
//!
//! # Patch-safe use from threads that do not take part in safe points
//!
//! A thread that never calls [`safe_point`](crate::safe_point) (a tokio worker, say) sees each hot
//! slot switch on its own. For it to see code and values switch together, lock the value, then
//! call the hot code: [`Handle::lock`] takes the lock without checking the version, and the hot
//! function checks it with [`Locked::get_mut`]. A commit swaps slots and values while it holds every
//! value's lock, so code reached after the lock was taken always matches the value.

mod migrate;
mod store;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use migrate::StateChange;
pub(crate) use migrate::{Migrated, Replaced, Transition, TransitionSet};
pub use store::{Handle, Locked, Singleton, StateMut, StateRef};

/// The form a value takes between two versions of its type: serialised by the code of the version
/// it has, deserialised by the code of the version it gets.
pub type StateValue = serde_json::Value;

/// One version of a `#[hot_state]` type, live or a `snapshot`: how to read it from any older
/// version and write it as any older version. `#[hot_state]` implements it.
pub trait StateVersion: Serialize + DeserializeOwned + Sized {
    /// The version, from `#[hot_state(version = N)]`.
    const VERSION: u32;

    /// Reads a value written as `version` of this type, migrating it up the chain of `previous`
    /// versions.
    fn from_version(version: u32, value: StateValue) -> Result<Self, MigrationError>;

    /// Writes this value as `version` of this type, migrating it down the chain.
    fn to_version(&self, version: u32) -> Result<StateValue, MigrationError>;
}

/// A live `#[hot_state]` type: its values live in the runtime's storage. `#[hot_state]`
/// implements it.
///
/// # Safety
/// `LAYOUT` must differ between any two types registered under the same `NAME` whose layouts
/// differ, and `state_type` must return the descriptor made by `StateType::of::<Self>`.
pub unsafe trait HotState: StateVersion + Send + Sync + 'static {
    /// The name values are kept under: the type's path (`crate::module::Type`), or
    /// `#[hot_state(name = "...")]`.
    const NAME: &'static str;
    /// Fingerprint of the version and the layout, compared on every access.
    const LAYOUT: u64;
    /// The descriptor registered with the runtime.
    fn state_type() -> &'static StateType;
}

/// Migrations between a type and its previous version: `up` when a patch brings the new version,
/// `down` when it is rolled back. Plain Rust; an error (or a panic) refuses the patch and leaves
/// every value as it was.
#[diagnostic::on_unimplemented(
    message = "`{Self}` names `{Previous}` as its previous version but has no migration from it",
    label = "needs `impl Migrate<{Previous}> for {Self}`",
    note = "write `impl hotreload_runtime::state::Migrate<{Previous}> for {Self}` with `up` (from the previous version) and `down` (back to it, for rollback)"
)]
pub trait Migrate<Previous>: Sized {
    /// The new version of a value of the previous version.
    fn up(previous: Previous) -> Result<Self, MigrationError>;
    /// The previous version of this value, for rollback. The value itself is kept until every
    /// value has migrated.
    fn down(&self) -> Result<Previous, MigrationError>;
}

/// Why a migration failed: its message is shown to whoever applied the patch.
pub struct MigrationError {
    message: String,
}

impl MigrationError {
    /// A migration error saying `message`.
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for MigrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for MigrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MigrationError({:?})", self.message)
    }
}

impl From<String> for MigrationError {
    fn from(message: String) -> Self {
        Self { message }
    }
}

impl From<&str> for MigrationError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// Why an access to a `#[hot_state]` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The value has another version than the code touching it was compiled with.
    #[error("`{name}` is at version {value_version} but this code was compiled against version {code_version}: it is old code still running after a patch migrated the value (or new code after a rollback); reach `{name}` from hot code, after taking the value's lock (`Handle::lock`), so code and value switch together")]
    Version {
        /// The type's name.
        name: &'static str,
        /// The version the accessing code was compiled with.
        code_version: u32,
        /// The value's version.
        value_version: u32,
    },

    /// Converting a value stored by code of another version failed.
    #[error("a `{name}` of version {from} could not be stored as version {to}: {reason}")]
    Convert {
        /// The type's name.
        name: &'static str,
        /// The value's version.
        from: u32,
        /// The version values are kept at.
        to: u32,
        /// The migration's error.
        reason: String,
    },
}

/// The descriptor of one version of a `#[hot_state]` type: what the runtime needs to store, migrate
/// and free its values without knowing the type. Made by `#[hot_state]`.
pub struct StateType {
    name: &'static str,
    version: u32,
    layout: u64,
    rust_type: fn() -> &'static str,
    /// Writes the value at the pointer as `version`.
    to_version: unsafe fn(*const (), u32) -> Result<StateValue, MigrationError>,
    /// Reads a value written as `version` into a new allocation.
    from_version: fn(u32, StateValue) -> Result<*mut (), MigrationError>,
    drop: unsafe fn(*mut ()),
    record: &'static [u8],
}

impl StateType {
    /// The descriptor of `T`; `record` is its entry in the `.hotreload_states` section, which
    /// `cargo hotpatch` reads from the binaries to compare versions at patch build.
    pub const fn of<T: HotState>(record: &'static [u8]) -> Self {
        Self {
            name: T::NAME,
            version: T::VERSION,
            layout: T::LAYOUT,
            rust_type: std::any::type_name::<T>,
            to_version: erased_to_version::<T>,
            from_version: erased_from_version::<T>,
            drop: erased_drop::<T>,
            record,
        }
    }

    /// The name values are kept under.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The layout fingerprint.
    pub fn layout(&self) -> u64 {
        self.layout
    }

    /// The Rust type's name.
    pub fn rust_type(&self) -> &'static str {
        (self.rust_type)()
    }

    /// The bytes of its `.hotreload_states` record.
    pub fn record(&self) -> &'static [u8] {
        self.record
    }
}

impl fmt::Debug for StateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateType")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("layout", &format_args!("{:016x}", self.layout))
            .finish()
    }
}

/// # Safety
/// `value` must point to a live `T`.
unsafe fn erased_to_version<T: HotState>(
    value: *const (),
    version: u32,
) -> Result<StateValue, MigrationError> {
    // SAFETY: the caller passes a pointer to a live `T`.
    let value = unsafe { &*value.cast::<T>() };
    value.to_version(version)
}

fn erased_from_version<T: HotState>(
    version: u32,
    value: StateValue,
) -> Result<*mut (), MigrationError> {
    T::from_version(version, value).map(|value| Box::into_raw(Box::new(value)).cast())
}

/// # Safety
/// `value` must come from `Box::<T>::into_raw` and not be used again.
unsafe fn erased_drop<T: HotState>(value: *mut ()) {
    // SAFETY: the caller passes a pointer from `Box::<T>::into_raw`, given up by it.
    drop(unsafe { Box::from_raw(value.cast::<T>()) });
}

/// A registration made by `#[hot_state]`, collected from the binary and from every patch library.
#[doc(hidden)]
pub struct StateRegistration(pub &'static StateType);

inventory::collect!(StateRegistration);

/// Every state type registered so far, newest first (libraries loaded later come first).
pub(crate) fn registered() -> impl Iterator<Item = &'static StateType> {
    inventory::iter::<StateRegistration>
        .into_iter()
        .map(|registration| registration.0)
}

/// The version values of `name` are kept at now: the store's, or, before any value was stored,
/// the oldest registration's (the executable's own), leaving out `excluding`.
pub(crate) fn running_type(
    name: &str,
    excluding: &[&'static StateType],
) -> Option<&'static StateType> {
    if let Some(store) = store::all_stores().into_iter().find(|s| s.name() == name) {
        return Some(store.current());
    }
    registered()
        .filter(|t| t.name == name && !excluding.iter().any(|e| std::ptr::eq(*e, *t)))
        .last()
}

/// Values stored under `name` now.
pub(crate) fn live_values(name: &str) -> usize {
    store::all_stores()
        .into_iter()
        .find(|s| s.name() == name)
        .map_or(0, |s| s.len())
}

/// Summary of one state type for status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateInfo {
    /// The name values are kept under.
    pub name: &'static str,
    /// The version values are kept at now.
    pub version: u32,
    /// Values live now (handles and singletons).
    pub values: usize,
}

/// Every state type that has values, with its version and number of values.
pub fn states() -> Vec<StateInfo> {
    store::all_stores()
        .into_iter()
        .map(|store| StateInfo {
            name: store.name(),
            version: store.current().version,
            values: store.len(),
        })
        .collect()
}

/// What `#[hot_state]` generates code against. Not a public API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    /// `from_version_via::<T, _>` as a function pointer.
    pub type FromVersionFn<T> = fn(&str, u32, StateValue) -> Result<T, MigrationError>;
    /// `to_version_via::<T, _>` as a function pointer.
    pub type ToVersionFn<T> = fn(&str, &T, u32) -> Result<StateValue, MigrationError>;

    /// `from_version` of a type without a previous version.
    pub fn from_own_version<T: StateVersion>(
        name: &str,
        version: u32,
        value: StateValue,
    ) -> Result<T, MigrationError> {
        if version == T::VERSION {
            return deserialize(name, version, value);
        }
        Err(no_chain(name, T::VERSION, version))
    }

    /// `to_version` of a type without a previous version.
    pub fn to_own_version<T: StateVersion>(
        name: &str,
        value: &T,
        version: u32,
    ) -> Result<StateValue, MigrationError> {
        if version == T::VERSION {
            return serialize(name, version, value);
        }
        Err(no_chain(name, T::VERSION, version))
    }

    /// `from_version` of a type whose previous version is `P`.
    pub fn from_version_via<T, P>(
        name: &str,
        version: u32,
        value: StateValue,
    ) -> Result<T, MigrationError>
    where
        T: StateVersion + Migrate<P>,
        P: StateVersion,
    {
        if version == T::VERSION {
            return deserialize(name, version, value);
        }
        if version > T::VERSION {
            return Err(no_chain(name, T::VERSION, version));
        }
        let previous = P::from_version(version, value)?;
        T::up(previous).map_err(|error| {
            MigrationError::new(format_args!(
                "migrating `{name}` from version {} to {}: {error}",
                P::VERSION,
                T::VERSION
            ))
        })
    }

    /// `to_version` of a type whose previous version is `P`.
    pub fn to_version_via<T, P>(
        name: &str,
        value: &T,
        version: u32,
    ) -> Result<StateValue, MigrationError>
    where
        T: StateVersion + Migrate<P>,
        P: StateVersion,
    {
        if version == T::VERSION {
            return serialize(name, version, value);
        }
        if version > T::VERSION {
            return Err(no_chain(name, T::VERSION, version));
        }
        let previous = value.down().map_err(|error| {
            MigrationError::new(format_args!(
                "migrating `{name}` down from version {} to {}: {error}",
                T::VERSION,
                P::VERSION
            ))
        })?;
        previous.to_version(version)
    }

    /// The layout fingerprint: FNV-1a over the name, the version, the shape's hash, the size and
    /// the alignment. Computed at compile time.
    pub const fn layout_fingerprint(
        name: &str,
        version: u32,
        shape: u64,
        size: usize,
        align: usize,
    ) -> u64 {
        let mut hash = fnv(0xcbf2_9ce4_8422_2325, name.as_bytes());
        hash = fnv(hash, &version.to_le_bytes());
        hash = fnv(hash, &shape.to_le_bytes());
        hash = fnv(hash, &(size as u64).to_le_bytes());
        fnv(hash, &(align as u64).to_le_bytes())
    }

    const fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        hash
    }

    /// Length of the `.hotreload_states` record of a type named `name` at `path`.
    pub const fn record_len(name: &str, path: &str) -> usize {
        RECORD_HEADER_LEN + name.len() + path.len()
    }

    /// The `.hotreload_states` record: `HOTSTATE`, the version (u32 LE), the lengths of the name
    /// and of the Rust path (u16 LE each), the layout fingerprint (u64 LE), the name, the path.
    pub const fn record<const N: usize>(
        name: &str,
        path: &str,
        version: u32,
        layout: u64,
    ) -> [u8; N] {
        let mut out = [0u8; N];
        let mut at = copy(&mut out, 0, RECORD_MAGIC);
        at = copy(&mut out, at, &version.to_le_bytes());
        at = copy(&mut out, at, &(name.len() as u16).to_le_bytes());
        at = copy(&mut out, at, &(path.len() as u16).to_le_bytes());
        at = copy(&mut out, at, &layout.to_le_bytes());
        at = copy(&mut out, at, name.as_bytes());
        copy(&mut out, at, path.as_bytes());
        out
    }

    const fn copy<const N: usize>(out: &mut [u8; N], at: usize, bytes: &[u8]) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            out[at + i] = bytes[i];
            i += 1;
        }
        at + bytes.len()
    }

    /// First bytes of a `.hotreload_states` record.
    pub const RECORD_MAGIC: &[u8; 8] = b"HOTSTATE";
    /// Bytes before the name in a record.
    pub const RECORD_HEADER_LEN: usize = 24;

    fn deserialize<T: StateVersion>(
        name: &str,
        version: u32,
        value: StateValue,
    ) -> Result<T, MigrationError> {
        serde_json::from_value(value).map_err(|error| {
            MigrationError::new(format_args!("reading `{name}` version {version}: {error}"))
        })
    }

    fn serialize<T: StateVersion>(
        name: &str,
        version: u32,
        value: &T,
    ) -> Result<StateValue, MigrationError> {
        serde_json::to_value(value).map_err(|error| {
            MigrationError::new(format_args!("writing `{name}` version {version}: {error}"))
        })
    }

    fn no_chain(name: &str, have: u32, wanted: u32) -> MigrationError {
        MigrationError::new(format_args!(
            "`{name}` version {have} has no migration chain to or from version {wanted}"
        ))
    }
}

/// A `.hotreload_states` record, as `cargo hotpatch` reads them from binaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StateRecord {
    /// The name values are kept under.
    pub name: String,
    /// The type's Rust path (`crate::module::Type`), as debug information names it.
    pub path: String,
    /// The version.
    pub version: u32,
    /// The layout fingerprint.
    pub layout: u64,
}

/// Reads the records of a `.hotreload_states` section.
pub fn parse_records(section: &[u8]) -> Vec<StateRecord> {
    use __private::{RECORD_HEADER_LEN, RECORD_MAGIC};
    let mut records = Vec::new();
    let mut at = 0;
    while at + RECORD_HEADER_LEN <= section.len() {
        if &section[at..at + 8] != RECORD_MAGIC {
            at += 1;
            continue;
        }
        let header = &section[at..at + RECORD_HEADER_LEN];
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        let name_len = usize::from(u16::from_le_bytes([header[12], header[13]]));
        let path_len = usize::from(u16::from_le_bytes([header[14], header[15]]));
        let mut layout = [0u8; 8];
        layout.copy_from_slice(&header[16..24]);
        let start = at + RECORD_HEADER_LEN;
        let (Some(name), Some(path)) = (
            section.get(start..start + name_len),
            section.get(start + name_len..start + name_len + path_len),
        ) else {
            break;
        };
        records.push(StateRecord {
            name: String::from_utf8_lossy(name).into_owned(),
            path: String::from_utf8_lossy(path).into_owned(),
            version,
            layout: u64::from_le_bytes(layout),
        });
        at = start + name_len + path_len;
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_between_other_bytes() {
        const A: [u8; __private::record_len("app::Session", "app::s::Session")] =
            __private::record("app::Session", "app::s::Session", 3, 0xdead_beef);
        const B: [u8; __private::record_len("x", "y")] = __private::record("x", "y", 1, 7);
        let mut section = vec![0u8; 5];
        section.extend_from_slice(&A);
        section.extend_from_slice(&B);
        section.extend_from_slice(b"HOTST");
        let records = parse_records(&section);
        assert_eq!(
            records,
            vec![
                StateRecord {
                    name: "app::Session".into(),
                    path: "app::s::Session".into(),
                    version: 3,
                    layout: 0xdead_beef
                },
                StateRecord {
                    name: "x".into(),
                    path: "y".into(),
                    version: 1,
                    layout: 7
                },
            ]
        );
    }
}
