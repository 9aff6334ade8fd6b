//! Entry redirection where it is not implemented (anything but x86-64 Linux): every request is
//! refused, saying so, and nothing is ever redirected.

use std::time::Duration;

use super::entry_types::{EntryError, EntryLimits, EntryOutcome, EntryTarget};

/// Refuses: entry redirection is not supported here. Redirecting nothing succeeds.
///
/// # Safety
/// None here (nothing is written); the signature matches the supported platform's.
pub(crate) unsafe fn redirect_entries(
    desired: &[EntryTarget],
    _limits: &EntryLimits,
) -> Result<EntryOutcome, EntryError> {
    if desired.is_empty() {
        return Ok(EntryOutcome::default());
    }
    Err(EntryError::Unsupported {
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
    })
}

/// Nothing is ever redirected here.
pub(crate) fn redirected_entries() -> Vec<EntryTarget> {
    Vec::new()
}

/// No thread is ever checked here.
pub(crate) fn foreign_thread_count() -> usize {
    0
}

/// No stop ever happens here.
pub(crate) fn last_pause() -> Option<Duration> {
    None
}
