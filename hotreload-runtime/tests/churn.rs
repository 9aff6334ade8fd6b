//! Threads that enrol in safe points and exit while commits run: a commit never waits for a thread
//! that has left, never touches its thread-locals after it left, and every call still returns the
//! old or the new function's result.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hotreload_runtime::{hot, safe_point, Table, Update};

#[hot]
fn value() -> u32 {
    1
}

fn value_v2() -> u32 {
    2
}

#[test]
fn threads_coming_and_going_during_commits_neither_stall_nor_break_them() {
    let stop = Arc::new(AtomicBool::new(false));
    let lifetimes = Arc::new(AtomicU64::new(0));
    let spawners: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            let lifetimes = lifetimes.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // A short-lived participant: enrols, runs a few batches, exits.
                    std::thread::spawn(|| {
                        for _ in 0..20 {
                            let seen = value();
                            assert!(seen == 1 || seen == 2, "value returned {seen}");
                            safe_point();
                        }
                    })
                    .join()
                    .unwrap();
                    lifetimes.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let table = Table::global();
    let function = table.function("churn::value").unwrap();
    for _ in 0..3000 {
        let update = Update::new("v2")
            .replace(function, value_v2 as fn() -> u32)
            .unwrap();
        // A thread that exits while the commit waits must not hold it up.
        table
            .commit_with_timeout(update, Duration::from_secs(5))
            .expect("commits go through while threads come and go");
        table.rollback().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for spawner in spawners {
        spawner.join().unwrap();
    }
    assert!(lifetimes.load(Ordering::Relaxed) > 0);
    assert_eq!(value(), 1);
    assert_eq!(hotreload_runtime::participant_count(), 0);
}
