//! Opening a patch library and finding the hot functions it registered.

use std::collections::BTreeMap;
use std::ffi::CString;

use crate::error::Error;
use crate::platform::{self, OpenLibrary};
use crate::slot::{self, HotFunction};
use crate::state::{self, StateType};
use crate::wire::patch_file::StaticRedirect;

/// A loaded patch library and the registrations its constructors added.
pub(crate) struct Loaded {
    /// Kept open for the rest of the process.
    pub(crate) library: OpenLibrary,
    /// The registrations the library added, in registration order.
    pub(crate) registrations: Vec<&'static HotFunction>,
    /// The `#[hot_state]` types the library registered.
    pub(crate) states: Vec<&'static StateType>,
}

/// Opens the verified library `bytes` of patch `short_id` and collects the `#[hot]` registrations
/// its constructors added to the process's registry (the same one the binary's use).
///
/// Callers serialise loads, so the registrations between the newest one before and the head of
/// the registry after are exactly this library's.
pub(crate) fn load(
    short_id: &str,
    bytes: &[u8],
    redirects: &[StaticRedirect],
    earlier: &BTreeMap<String, CString>,
) -> Result<Loaded, Error> {
    let newest_before = slot::registered().next();
    let newest_state_before = state::registered().next();
    let library =
        platform::open_library(short_id, bytes, redirects, earlier).map_err(|reason| {
            Error::Load {
                patch: short_id.to_owned(),
                reason,
            }
        })?;
    // inventory prepends: everything before the former head is new.
    let mut registrations: Vec<&'static HotFunction> = slot::registered()
        .take_while(|f| !newest_before.is_some_and(|before| std::ptr::eq(before, *f)))
        .collect();
    registrations.reverse();
    let mut states: Vec<&'static StateType> = state::registered()
        .take_while(|t| !newest_state_before.is_some_and(|before| std::ptr::eq(before, *t)))
        .collect();
    states.reverse();
    tracing::debug!(
        patch = short_id,
        hot_functions = registrations.len(),
        states = states.len(),
        bytes = library.mapped_bytes,
        "patch library loaded"
    );
    Ok(Loaded {
        library,
        registrations,
        states,
    })
}
