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
//! # Changes serde bridges by itself, under `cargo hotpatch watch`
//!
//! Under `cargo hotpatch run` and `watch`, a patch may change a type's fields *without* raising
//! its version and without a migration: each live value is serialised by the running code and
//! deserialised by the patch's, so whatever serde bridges on its own just works: a field added
//! with `#[serde(default)]` or as an `Option` (it starts empty), a field removed (its value is
//! dropped), a field renamed with `#[serde(alias = "old_name")]`. Rolling back (or saving the old
//! text again) carries the values back the same way; a field the patch removed comes back only if
//! the old version can do without it (an `Option`, or `#[serde(default)]`). A change serde cannot
//! bridge (a field's type changed, a new field with no default) fails its migration: the patch is
//! refused naming the value and serde's error, every value keeps its old version, and the app
//! runs on.
//!
//! Production patches (`cargo hotpatch build`) keep the rule above: a changed layout needs a
//! raised version and a written migration, which the tool checks when it builds the patch and the
//! process again when it applies it. The two meet at the base: edit freely under `watch`; before
//! building a patch for production, raise the version of each type whose layout changed since the
//! production build and keep that build's type as the `snapshot` to migrate from.
//!
//! # Patch-safe use from threads that do not take part in safe points
//!
//! A thread that never calls [`safe_point`](crate::safe_point) (a tokio worker, say) sees each hot
//! slot switch on its own. For it to see code and values switch together, lock the value, then
//! call the hot code: [`Handle::lock`] takes the lock without checking the version, and the hot
//! function checks it with [`Locked::get_mut`]. A commit swaps slots and values while it holds every
//! value's lock, so code reached after the lock was taken always matches the value.

mod convert;
pub(crate) mod generated;
mod migrate;
mod store;
mod types;

pub(crate) use migrate::{Migrated, Replaced, Transition, TransitionSet};
pub use store::{Handle, Locked, Singleton, StateMut, StateRef};
pub use types::{
    HotState, Migrate, MigrationError, StateError, StateType, StateValue, StateVersion,
};

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
        .filter(|t| t.name() == name && !excluding.iter().any(|e| std::ptr::eq(*e, *t)))
        .last()
}

/// Whether a patch may change a state type's layout while keeping its version, its values carried
/// across by serde alone (serialised by the running version, deserialised by the new one): under
/// `cargo hotpatch run` and `watch` only. Set by [`init`](crate::init).
static SAME_VERSION_BRIDGED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Lets patches change a state type's layout with its version kept (see `SAME_VERSION_BRIDGED`).
pub(crate) fn bridge_same_version() {
    SAME_VERSION_BRIDGED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether a layout change with the version kept is bridged by serde.
pub(crate) fn same_version_bridged() -> bool {
    SAME_VERSION_BRIDGED.load(std::sync::atomic::Ordering::Relaxed)
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
            version: store.current().version(),
            values: store.len(),
        })
        .collect()
}
