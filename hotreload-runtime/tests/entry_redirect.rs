//! Entry redirection on real threads: busy threads call plain (not `#[hot]`) functions flat out,
//! directly, through a function pointer taken before and through a vtable, and never reach a safe
//! point; the functions' entries are redirected to other functions of this executable, retargeted,
//! and restored. Every call that starts after a switch returned runs the code it set.

// Entry redirection exists on x86-64 Linux only.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

mod support;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hotreload_runtime::entry::{redirect_entries, EntryLimits, EntryTarget};
use support::entry::{price, price_v2};
use support::symbols::function_size;

/// Entry redirection keeps one process-wide set: the tests of this file take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[inline(never)]
fn price_v3(x: u64) -> u64 {
    black_box(x).wrapping_mul(3).wrapping_add(3)
}

#[inline(never)]
fn tax(x: u64) -> u64 {
    black_box(x) / 7
}

#[inline(never)]
fn tax_v2(x: u64) -> u64 {
    black_box(x) / 7 + 1_000_000
}

trait Shape {
    fn area(&self) -> u64;
}

struct Square(u64);

impl Shape for Square {
    #[inline(never)]
    fn area(&self) -> u64 {
        black_box(self.0) * self.0
    }
}

#[inline(never)]
fn area_v2(square: &Square) -> u64 {
    black_box(square.0) * square.0 + 1
}

fn target(name: &str, entry: usize, to: usize) -> EntryTarget {
    EntryTarget {
        name: name.to_owned(),
        entry,
        size: function_size(entry),
        target: to,
    }
}

fn limits() -> EntryLimits {
    EntryLimits {
        max_pause: Duration::from_secs(2),
        retry_for: Duration::from_secs(1),
    }
}

fn area_entry() -> usize {
    <Square as Shape>::area as fn(&Square) -> u64 as usize
}

/// Versions set so far, by switch: 1 the executable's code, 2 and 3 the new ones. A switch writes
/// its version under `PENDING` before redirecting and publishes it in `PUBLISHED` once done: a
/// call that starts after switch `s` is published may run the code of `s` or of a later switch
/// that began before the call returned, nothing else.
static VERSIONS: [AtomicU64; 8192] = [const { AtomicU64::new(1) }; 8192];
static PENDING: AtomicUsize = AtomicUsize::new(0);
static PUBLISHED: AtomicUsize = AtomicUsize::new(0);
static WRONG: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);

/// What `price`, `tax` and `area` (of `Square(5)`) return for `x` in version `v`.
fn results_of(v: u64, x: u64) -> (u64, u64, u64) {
    let new = v > 1;
    (
        x.wrapping_mul(3).wrapping_add(v),
        if new { x / 7 + 1_000_000 } else { x / 7 },
        if new { 26 } else { 25 },
    )
}

/// One busy thread: calls `price` directly, `tax` through a pointer taken before any redirect and
/// `area` through a vtable, checking each result against the versions possible for its call.
fn busy(stop: &AtomicBool, tax_pointer: fn(u64) -> u64, shape: &dyn Shape) {
    let mut x = 0u64;
    while !stop.load(Ordering::Relaxed) {
        x = x.wrapping_add(1);
        let first = PUBLISHED.load(Ordering::SeqCst);
        let got = (price(x), tax_pointer(x), shape.area());
        let last = PENDING.load(Ordering::SeqCst);
        let possible = || (first..=last).map(|s| results_of(VERSIONS[s].load(Ordering::SeqCst), x));
        let price_ok = possible().any(|want| want.0 == got.0);
        let tax_ok = possible().any(|want| want.1 == got.1);
        let area_ok = possible().any(|want| want.2 == got.2);
        if !(price_ok && tax_ok && area_ok) {
            WRONG.fetch_add(1, Ordering::Relaxed);
        }
        CALLS.fetch_add(1, Ordering::Relaxed);
    }
}

fn start_busy_threads(count: usize, stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let tax_pointer: fn(u64) -> u64 = black_box(tax);
    (0..count)
        .map(|_| {
            let stop = Arc::clone(stop);
            std::thread::spawn(move || busy(&stop, tax_pointer, &Square(5)))
        })
        .collect()
}

/// The set of redirects for `version` (1: none). Sizes are read from the executable once.
fn set_for(version: u64) -> Vec<EntryTarget> {
    static BOTH: std::sync::OnceLock<[Vec<EntryTarget>; 2]> = std::sync::OnceLock::new();
    let both = BOTH.get_or_init(|| {
        let with = |new_price: fn(u64) -> u64| {
            vec![
                target(
                    "price",
                    price as fn(u64) -> u64 as usize,
                    new_price as usize,
                ),
                target(
                    "tax",
                    tax as fn(u64) -> u64 as usize,
                    tax_v2 as fn(u64) -> u64 as usize,
                ),
                target(
                    "Square::area",
                    area_entry(),
                    area_v2 as fn(&Square) -> u64 as usize,
                ),
            ]
        };
        [with(price_v2), with(price_v3)]
    });
    match version {
        1 => Vec::new(),
        2 => both[0].clone(),
        _ => both[1].clone(),
    }
}

/// Switches to `version`: announces it, redirects, then publishes it: every call started from
/// now on must run it (until the next switch).
fn switch_to(version: u64) -> hotreload_runtime::entry::EntryOutcome {
    let switch = PENDING.load(Ordering::SeqCst) + 1;
    VERSIONS[switch].store(version, Ordering::SeqCst);
    PENDING.store(switch, Ordering::SeqCst);
    // SAFETY: each target has its function's signature and is code of this executable.
    let outcome = unsafe { redirect_entries(&set_for(version), &limits()) }
        .unwrap_or_else(|error| panic!("switching to version {version}: {error}"));
    PUBLISHED.store(switch, Ordering::SeqCst);
    outcome
}

fn wait_for_calls(at_least: u64) {
    let until = CALLS.load(Ordering::Relaxed) + at_least;
    while CALLS.load(Ordering::Relaxed) < until {
        std::thread::yield_now();
    }
}

#[test]
fn later_calls_run_the_new_code_directly_through_pointers_and_vtables() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stop = Arc::new(AtomicBool::new(false));
    let threads = start_busy_threads(4, &stop);
    wait_for_calls(10_000);

    let written = switch_to(2);
    assert_eq!((written.written, written.redirected), (3, 3));
    assert!(written.pause.is_some(), "writing entries stops the threads");
    assert!(
        written.threads >= 4,
        "the busy threads were stopped: {written:?}"
    );
    wait_for_calls(10_000);
    assert_eq!(price(10), 32, "this thread's direct call runs the new code");

    let retargeted = switch_to(3);
    assert_eq!(retargeted.retargeted, 1, "only price changes target");
    assert_eq!(retargeted.pause, None, "retargeting needs no stop");
    wait_for_calls(10_000);

    let restored = switch_to(1);
    assert_eq!((restored.restored, restored.redirected), (3, 0));
    wait_for_calls(10_000);
    assert_eq!(price(10), 31);

    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(
        WRONG.load(Ordering::Relaxed),
        0,
        "calls ran code other than the version set"
    );
}

#[test]
fn thousands_of_redirects_and_restores_while_threads_call() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stop = Arc::new(AtomicBool::new(false));
    // Two busy threads and this one fit 2 cores: more runnable threads than cores make each stop
    // wait a scheduler time slice, and thousands of cycles would take minutes.
    let threads = start_busy_threads(2, &stop);
    let cycles = 3_000;
    for cycle in 0..cycles {
        switch_to(if cycle % 3 == 0 { 3 } else { 2 });
        wait_for_calls(50);
        switch_to(1);
        wait_for_calls(50);
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(
        WRONG.load(Ordering::Relaxed),
        0,
        "{cycles} redirect/restore cycles: every call ran the version set before it started"
    );
    assert!(hotreload_runtime::entry::redirected_entries().is_empty());
}
