//! What the entry-redirection tests share: functions to redirect, the turn they take (entry
//! redirection keeps one process-wide set), the limits and a signal mask like Mesa's threads'.

use std::hint::black_box;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hotreload_runtime::entry::EntryTarget;
use hotreload_runtime::entry::{redirect_entries, EntryError, EntryLimits, EntryOutcome};

use super::symbols::function_size;

#[inline(never)]
pub fn price(x: u64) -> u64 {
    black_box(x).wrapping_mul(3).wrapping_add(1)
}

#[inline(never)]
pub fn price_v2(x: u64) -> u64 {
    black_box(x).wrapping_mul(3).wrapping_add(2)
}

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The tests of one file take turns.
pub fn turn() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A 2 s pause limit, retried for 300 ms.
pub fn limits() -> EntryLimits {
    EntryLimits {
        max_pause: Duration::from_secs(2),
        retry_for: Duration::from_millis(300),
    }
}

/// Redirects `targets` within [`limits`].
pub fn redirect(targets: &[EntryTarget]) -> Result<EntryOutcome, EntryError> {
    // SAFETY: every target the tests give has the signature of the function it replaces.
    unsafe { redirect_entries(targets, &limits()) }
}

pub fn entry(name: &str, entry: usize, size: usize, target: usize) -> EntryTarget {
    EntryTarget {
        name: name.to_owned(),
        entry,
        size,
        target,
    }
}

/// `price` to `price_v2`.
pub fn price_redirect() -> EntryTarget {
    let at = price as fn(u64) -> u64 as usize;
    entry(
        "price",
        at,
        function_size(at),
        price_v2 as fn(u64) -> u64 as usize,
    )
}

/// Blocks every signal in the calling thread (and the threads it starts), as Mesa's threads do.
pub fn block_every_signal() {
    // SAFETY: `set` is a valid `sigset_t` filled by `sigfillset` before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
            0
        );
    }
}
