//! The vocabulary of `#[hot_state]`: the traits generated code implements, the descriptor the
//! runtime keeps of each version of a type, the errors, and converting one value between two
//! versions. The store and the migration both build on this file; it depends on neither.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::de::DeserializeOwned;
use serde::Serialize;

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
    pub(super) name: &'static str,
    pub(super) version: u32,
    pub(super) layout: u64,
    rust_type: fn() -> &'static str,
    /// Writes the value at the pointer as `version`.
    to_version: unsafe fn(*const (), u32) -> Result<StateValue, MigrationError>,
    /// Reads a value written as `version` into a new allocation.
    from_version: fn(u32, StateValue) -> Result<*mut (), MigrationError>,
    pub(super) drop: unsafe fn(*mut ()),
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

/// A new allocation of type `to` holding `data` (of type `from`) migrated up or down: the code of
/// the newer version does the migrating, through the serialised form of the older version.
/// A migration's error or panic is returned as its message. `done_reading` is called once `data`
/// is no longer read (the rest works on the serialised copy).
///
/// # Safety
/// `data` must point to a live value of the type `from` describes.
pub(super) unsafe fn convert(
    data: *const (),
    from: &StateType,
    to: &StateType,
    done_reading: &dyn Fn(),
) -> Result<*mut (), String> {
    let common = from.version.min(to.version);
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller's promise.
        let value = unsafe { (from.to_version)(data, common) }.map_err(|e| e.to_string())?;
        done_reading();
        (to.from_version)(common, value).map_err(|e| e.to_string())
    }));
    match result {
        Ok(result) => result,
        Err(payload) => Err(format!(
            "the migration panicked: {}",
            panic_message(&*payload)
        )),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}
