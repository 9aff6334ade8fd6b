//! Entry redirection figures, in one run: the pause (first signal to release) for 1, 10 and 100
//! redirected functions with 2, 8 and 64 other threads, idle (asleep) and busy (calling the
//! functions flat out), and the cost of a call through a redirected entry against a direct call.
//!
//! `nice -n 19 cargo bench -p hotreload-runtime --bench entry_redirect`; prints medians.

#[path = "../tests/support/symbols.rs"]
#[allow(dead_code)]
mod symbols;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotreload_runtime::entry::{redirect_entries, EntryLimits, EntryTarget};

#[inline(never)]
fn old<const I: u64>(x: u64) -> u64 {
    black_box(x).wrapping_mul(3).wrapping_add(I)
}

#[inline(never)]
fn new<const I: u64>(x: u64) -> u64 {
    black_box(x).wrapping_mul(5).wrapping_add(I)
}

macro_rules! functions {
    ($f:ident; $($i:literal)*) => {
        [$($f::<$i> as fn(u64) -> u64),*]
    };
}

macro_rules! hundred {
    ($f:ident) => {
        functions!($f;
            0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29
            30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57
            58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85
            86 87 88 89 90 91 92 93 94 95 96 97 98 99)
    };
}

const OLD: [fn(u64) -> u64; 100] = hundred!(old);
const NEW: [fn(u64) -> u64; 100] = hundred!(new);

fn targets(count: usize) -> Vec<EntryTarget> {
    (0..count)
        .map(|i| {
            let entry = OLD[i] as usize;
            EntryTarget {
                name: format!("old::<{i}>"),
                entry,
                size: symbols::function_size(entry),
                target: NEW[i] as usize,
            }
        })
        .collect()
}

fn limits() -> EntryLimits {
    EntryLimits {
        max_pause: Duration::from_secs(30),
        retry_for: Duration::from_secs(5),
    }
}

/// Redirects exactly `targets`; the pause, and the stops given up first (a thread was inside).
fn set(targets: &[EntryTarget]) -> (Duration, u32) {
    // SAFETY: each `new::<I>` has the signature of `old::<I>`; both are code of this executable.
    let outcome = unsafe { redirect_entries(targets, &limits()) }.expect("redirect");
    let pause = outcome
        .pause
        .expect("writing or restoring stops the threads");
    (pause, outcome.retries)
}

/// `count` other threads, asleep or calling the 100 functions flat out, until dropped.
struct Threads {
    stop: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Threads {
    fn start(count: usize, busy: bool) -> Threads {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..count)
            .map(|t| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut x = t as u64;
                    while !stop.load(Ordering::Relaxed) {
                        if busy {
                            for f in OLD {
                                x = f(x);
                            }
                        } else {
                            std::thread::park_timeout(Duration::from_millis(100));
                        }
                    }
                    black_box(x);
                })
            })
            .collect();
        Threads { stop, handles }
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.handles.drain(..) {
            handle.thread().unpark();
            handle.join().unwrap();
        }
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn pauses() {
    println!("pause (first signal to release), median of write and restore stops:");
    println!(
        "{:>9} {:>8} {:>6} {:>12} {:>6}",
        "functions", "threads", "mode", "median", "stops"
    );
    for threads in [2usize, 8, 64] {
        for busy in [false, true] {
            let _threads = Threads::start(threads, busy);
            std::thread::sleep(Duration::from_millis(100));
            for functions in [1usize, 10, 100] {
                let set_of = targets(functions);
                let rounds = if busy && threads == 64 { 3 } else { 10 };
                let mut stops = Vec::new();
                let mut retries = 0;
                for _ in 0..rounds {
                    for set_to in [&set_of[..], &[]] {
                        let (pause, retried) = set(set_to);
                        stops.push(pause);
                        retries += retried;
                    }
                }
                let mode = if busy { "busy" } else { "idle" };
                let count = stops.len();
                let median = median(stops);
                println!(
                    "{functions:>9} {threads:>8} {mode:>6} {median:>12.2?} {count:>6} {retries:>8}"
                );
            }
        }
    }
}

/// Nanoseconds per call of `f` over 20 M calls.
fn per_call(f: fn(u64) -> u64) -> f64 {
    let calls = 20_000_000u64;
    let started = Instant::now();
    let mut x = 1u64;
    for _ in 0..calls {
        x = f(black_box(x));
    }
    black_box(x);
    started.elapsed().as_nanos() as f64 / calls as f64
}

fn median_of(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The three calls measured in turn, 7 rounds, so that a change of load hits all of them alike.
fn call_cost() {
    let (mut direct, mut new_direct, mut redirected) = (Vec::new(), Vec::new(), Vec::new());
    let old_zero = black_box(old::<0> as fn(u64) -> u64);
    for _ in 0..7 {
        direct.push(per_call(old_zero));
        new_direct.push(per_call(black_box(new::<0> as fn(u64) -> u64)));
        set(&targets(1));
        redirected.push(per_call(old_zero));
        set(&[]);
    }
    println!("call cost, median of 7 rounds of 20 M calls each:");
    println!(
        "  direct call of the old function       {:.2} ns",
        median_of(direct)
    );
    println!(
        "  direct call of the new function       {:.2} ns",
        median_of(new_direct)
    );
    println!(
        "  call of the old one, entry redirected {:.2} ns (jmp rel32, jmp [slot], new code)",
        median_of(redirected)
    );
}

fn main() {
    // Entry redirection exists on x86-64 Linux only; `cargo bench` passes `--bench`, ignored.
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        call_cost();
        pauses();
    }
}
