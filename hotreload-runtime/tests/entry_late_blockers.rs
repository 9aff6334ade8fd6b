//! Entry redirection while a library starts threads that block every signal (Mesa starts its
//! queues during the first frames): a thread that appears after the process's threads were
//! classified cannot be stopped, so the stop gives up on it at once and classifies again,
//! instead of waiting for it until the pause limit.

// Entry redirection exists on x86-64 Linux only.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

mod support;

use std::time::{Duration, Instant};

use hotreload_runtime::entry::{redirect_entries, EntryLimits, EntryTarget};
use support::entry::{block_every_signal, price, price_v2};
use support::symbols::function_size;

/// How long the spawner starts threads for.
const BURST: Duration = Duration::from_millis(300);
/// How long each started thread sleeps: longer than the pause limit, so that waiting for one
/// to park (or leave) would hit the limit.
const LIFETIME: Duration = Duration::from_secs(5);

#[test]
fn threads_that_start_blocking_every_signal_during_the_stop_are_classified_again() {
    let spawner = std::thread::spawn(|| {
        block_every_signal();
        let started = Instant::now();
        while started.elapsed() < BURST {
            std::thread::spawn(|| std::thread::sleep(LIFETIME));
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    std::thread::sleep(Duration::from_millis(20));
    let at = price as fn(u64) -> u64 as usize;
    let target = EntryTarget {
        name: "price".to_owned(),
        entry: at,
        size: function_size(at),
        target: price_v2 as fn(u64) -> u64 as usize,
    };
    let limits = EntryLimits {
        max_pause: Duration::from_secs(2),
        retry_for: Duration::from_secs(2),
    };
    let started = Instant::now();
    // SAFETY: `price_v2` has `price`'s signature.
    let outcome = unsafe { redirect_entries(&[target], &limits) };
    let took = started.elapsed();
    spawner.join().unwrap();
    let outcome = outcome.expect("redirected once the threads stopped starting");
    assert_eq!(price(1), 5, "the new code runs: {outcome:?}");
    // Waiting for a late thread until the limit would take the whole 2 s.
    assert!(
        took < Duration::from_millis(1500),
        "the late threads were given up on at once: {took:?}"
    );
    // SAFETY: restoring the original bytes.
    unsafe { redirect_entries(&[], &limits) }.expect("restored");
    assert_eq!(price(1), 4);
}
