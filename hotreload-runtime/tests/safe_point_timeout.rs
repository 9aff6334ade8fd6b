//! A commit that waits too long for a participating thread is abandoned unchanged, naming it.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use hotreload_runtime::{hot, safe_point, Error, Table, Update};

#[hot]
fn answer() -> u32 {
    1
}

fn answer_v2() -> u32 {
    2
}

#[test]
fn a_thread_that_never_reaches_a_safe_point_times_the_commit_out() {
    let (enrolled_tx, enrolled_rx) = mpsc::channel();
    let (finish_tx, finish_rx) = mpsc::channel::<()>();
    let stuck = std::thread::Builder::new()
        .name("stuck-worker".into())
        .spawn(move || {
            safe_point();
            enrolled_tx.send(()).unwrap();
            // Busy elsewhere: does not come back to a safe point until told.
            finish_rx.recv().unwrap();
            answer()
        })
        .unwrap();
    enrolled_rx.recv().unwrap();

    let table = Table::global();
    let function = table.function("safe_point_timeout::answer").unwrap();
    let update = || {
        Update::new("v2")
            .replace(function, answer_v2 as fn() -> u32)
            .unwrap()
    };
    let started = Instant::now();
    let error = table
        .commit_with_timeout(update(), Duration::from_millis(300))
        .unwrap_err();
    let waited = started.elapsed();
    match &error {
        Error::SafePointTimeout { threads, timeout } => {
            assert_eq!(*timeout, Duration::from_millis(300));
            assert_eq!(threads.len(), 1, "{threads:?}");
            assert!(threads[0].contains("stuck-worker"), "{threads:?}");
        }
        other => panic!("expected a safe point timeout, got {other}"),
    }
    assert!(error.to_string().contains("stuck-worker"), "{error}");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // Nothing changed.
    assert_eq!(answer(), 1);
    assert!(table.history().is_empty());
    assert!(table.functions().iter().all(|f| f.version == 0));

    // Once the thread has exited it no longer takes part, and the commit goes through.
    finish_tx.send(()).unwrap();
    assert_eq!(stuck.join().unwrap(), 1);
    assert_eq!(hotreload_runtime::participant_count(), 0);
    table
        .commit_with_timeout(update(), Duration::from_millis(300))
        .unwrap();
    assert_eq!(answer(), 2);
}
