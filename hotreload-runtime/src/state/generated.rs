//! What `#[hot_state]`'s generated code calls (through `hotreload_runtime::__private`): the
//! `from_version`/`to_version` bodies that walk the chain of previous versions, and the layout
//! fingerprint computed at compile time. Not a public API.

use super::types::{Migrate, MigrationError, StateValue, StateVersion};

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
