//! Entry redirection: every later call of a function of the executable runs other code.
//!
//! This is what a patch uses for the changed functions that are not `#[hot]` (the manifest's
//! `entry_redirects`): the function's first five bytes become a jump to a 16-byte slot near it,
//! and the slot jumps to the new code. A set of functions is written at once, in one stop of
//! every other thread (a real-time signal per thread; the pause is bounded by
//! [`EntryLimits::max_pause`]); a function already redirected is retargeted by one atomic store
//! of its slot's target, with no stop; restoring gives back the executable's exact bytes.
//!
//! Calls already running finish on the code they started in. Every call that starts after
//! [`redirect_entries`] returns, from any thread and through any caller, function pointer or
//! vtable, runs the target. The documentation module `docs::entry_redirects` gives the
//! preconditions and the production setting.
//!
//! Applying and rolling back patches keeps the set redirected in step with the patches; an app
//! that also calls [`redirect_entries`] itself replaces that set.

pub use crate::platform::{
    EntryError, EntryLimits, EntryOutcome, EntryTarget, DEFAULT_MAX_PAUSE, MAX_PAUSE_ENV,
};

/// Makes the functions redirected now exactly `desired`: a jump is written at each one not
/// redirected yet, each one already redirected gets its new target (no stop), and each one
/// redirected now but not listed gets its original bytes back. Names sharing one address are one
/// function (their targets must agree). All or nothing: on an error nothing changed.
///
/// Refused, naming the function and the reason: a function with fewer than 5 bytes and no padding
/// after it, whose size is unknown, whose first bytes are not the executable's, a thread that stays
/// inside its first five bytes (after retries for [`EntryLimits::retry_for`]), and a stop of the
/// threads that takes longer than [`EntryLimits::max_pause`].
///
/// # Safety
/// Each `target` must be the entry of a function that may run in place of the one at `entry`:
/// same arguments, return type and ABI, and code that stays mapped for the rest of the process.
/// Each `entry` must be the first instruction of a function of the executable into whose first
/// five bytes no jump leads other than to the first one.
///
/// # Platform-specific behaviour
/// x86-64 Linux only; elsewhere a non-empty `desired` is refused with [`EntryError::Unsupported`].
pub unsafe fn redirect_entries(
    desired: &[EntryTarget],
    limits: &EntryLimits,
) -> Result<EntryOutcome, EntryError> {
    // SAFETY: the caller's promise, passed on.
    unsafe { crate::platform::redirect_entries(desired, limits) }
}

/// The functions redirected now, with their targets.
pub fn redirected_entries() -> Vec<EntryTarget> {
    crate::platform::redirected_entries()
}

/// How long the last stop that wrote or restored entries kept the other threads stopped.
pub fn last_pause() -> Option<std::time::Duration> {
    crate::platform::last_pause()
}
