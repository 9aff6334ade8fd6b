//! A thread blocked in `blocking_at_safe_point` does not hold commits up, and does not return into
//! hot code in the middle of one.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use hotreload_runtime::{blocking_at_safe_point, hot, safe_point, Table, Update};

#[hot]
fn answer() -> u32 {
    1
}

fn answer_v2() -> u32 {
    2
}

#[test]
fn a_blocked_participant_does_not_hold_commits_up() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (blocked_tx, blocked_rx) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name("blocked-worker".into())
        .spawn(move || {
            safe_point();
            assert_eq!(answer(), 1);
            blocking_at_safe_point(|| {
                blocked_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            });
            // Back from blocking: the commit made meanwhile is complete.
            answer()
        })
        .unwrap();
    blocked_rx.recv().unwrap();

    let table = Table::global();
    let function = table.function("blocking_at_safe_point::answer").unwrap();
    let started = Instant::now();
    table
        .commit_with_timeout(
            Update::new("v2")
                .replace(function, answer_v2 as fn() -> u32)
                .unwrap(),
            Duration::from_secs(2),
        )
        .expect("the blocked participant does not hold the commit up");
    assert!(started.elapsed() < Duration::from_secs(1));
    release_tx.send(()).unwrap();
    assert_eq!(worker.join().unwrap(), 2);
}
