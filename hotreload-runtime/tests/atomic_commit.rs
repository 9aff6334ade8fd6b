//! For threads that take part in safe points a multi-function commit is atomic: between two safe
//! points a thread never sees the new `f` with the old `g`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use hotreload_runtime::{hot, safe_point, Table, Update};

#[hot]
fn f() -> u32 {
    1
}

#[hot]
fn g() -> u32 {
    1
}

fn two() -> u32 {
    2
}

#[test]
fn participating_threads_never_see_half_a_commit() {
    let stop = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..3 {
        let stop = stop.clone();
        let batches = batches.clone();
        workers.push(
            std::thread::Builder::new()
                .name(format!("participant-{worker}"))
                .spawn(move || {
                    let mut seen_new = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // One batch between two safe points: f and g must agree throughout.
                        let first = f();
                        for _ in 0..50 {
                            assert_eq!(g(), first, "g disagrees with f inside one batch");
                            assert_eq!(f(), first, "f changed inside one batch");
                        }
                        seen_new += u64::from(first == 2);
                        batches.fetch_add(1, Ordering::Relaxed);
                        safe_point();
                    }
                    seen_new
                })
                .unwrap(),
        );
    }

    let table = Table::global();
    let (f_fn, g_fn) = (
        table.function("atomic_commit::f").unwrap(),
        table.function("atomic_commit::g").unwrap(),
    );
    while hotreload_runtime::participant_count() < 3 {
        std::thread::yield_now();
    }
    for cycle in 0..300 {
        let update = Update::new(format!("both {cycle}"))
            .replace(f_fn, two as fn() -> u32)
            .unwrap()
            .replace(g_fn, two as fn() -> u32)
            .unwrap();
        table.commit(update).unwrap();
        // Let the workers run a few batches on the new code.
        let seen = batches.load(Ordering::Relaxed);
        while batches.load(Ordering::Relaxed) < seen + 3 {
            std::thread::yield_now();
        }
        table.rollback().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let seen_new: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(seen_new > 0, "the workers never ran the new code");
    assert_eq!((f(), g()), (1, 1));
}
