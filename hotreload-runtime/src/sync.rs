//! Locking that ignores poisoning, used for every mutex of the runtime.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, taking the data even if a thread panicked while holding it: the runtime's
/// mutexes guard data that every writer leaves consistent before anything that can panic, and a
/// running program must keep patching after a panic elsewhere.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
