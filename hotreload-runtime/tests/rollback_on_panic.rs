//! Rollback on panic, as production opts in to it (`HOTRELOAD_ROLLBACK_ON_PANIC=1`): a panic out
//! of patched code rolls the update back, the call runs again on the previous code when its
//! arguments can be passed again (otherwise the panic goes on), `status` reports it and the audit
//! log records it.
//!
//! The "patch" here gives a function's slot its own contained entry, as a patch's commit gives
//! the slots of the functions it replaces theirs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hotreload_runtime::wire::protocol::PatchPanic;
use hotreload_runtime::{hot, HistoryAction, Table, Update};

/// Makes the next call of a hot function below panic, once.
static PANIC_ONCE: AtomicBool = AtomicBool::new(false);

#[hot]
fn advance(position: &mut u64, by: u64) -> u64 {
    *position += by;
    if PANIC_ONCE.swap(false, Ordering::SeqCst) {
        let steps: Vec<u64> = Vec::new();
        return steps[*position as usize];
    }
    *position
}

#[hot]
fn consume(name: String) -> usize {
    if PANIC_ONCE.swap(false, Ordering::SeqCst) {
        panic!("could not consume {name}");
    }
    name.len()
}

/// Commits an update giving `key`'s slot its contained entry, labelled `label`.
fn patch_with_contained_entry(key: &str, label: &str) {
    let function = hotreload_runtime::function(key).expect("a hot function of this test");
    // SAFETY: a function's contained entry has its slot's type and is part of this binary.
    let update = unsafe { Update::new(label).replace_raw(function, function.contained()) };
    Table::global()
        .commit(update)
        .expect("no participant to wait for");
}

/// The recorded panic numbered `sequence`, once its rollback settled.
fn settled_panic(sequence: u64) -> PatchPanic {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = hotreload_runtime::patch::status();
        if let Some(panic) = status
            .panics
            .iter()
            .find(|p| p.sequence == sequence && p.settled)
        {
            return panic.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no settled panic {sequence}: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_panic_in_patched_code_rolls_it_back_and_runs_the_call_again() {
    let dir = std::env::temp_dir().join(format!("hotreload-rollback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("audit.jsonl");
    std::env::set_var("HOTRELOAD_AUDIT_LOG", &log);
    std::env::set_var("HOTRELOAD_ROLLBACK_ON_PANIC", "1");
    hotreload_runtime::init();

    // `&mut u64` and `u64` can be passed again: the call runs again from its start on the
    // previous code, after the `+= by` the panicked call made, and its caller gets the result.
    patch_with_contained_entry("rollback_on_panic::advance", "panicky advance");
    PANIC_ONCE.store(true, Ordering::SeqCst);
    let mut position = 0;
    assert_eq!(advance(&mut position, 5), 10);
    let panic = settled_panic(1);
    assert_eq!(panic.function, "rollback_on_panic::advance");
    assert!(panic.message.contains("index out of bounds"), "{panic:?}");
    assert!(
        panic
            .location
            .as_deref()
            .is_some_and(|l| l.contains("rollback_on_panic.rs:")),
        "the hook saw where: {panic:?}"
    );
    assert!(panic.rerun && panic.error.is_none(), "{panic:?}");
    assert_eq!(panic.rolled_back, ["panicky advance"]);
    let last = Table::global().history().pop().expect("a history");
    assert_eq!(last.action, HistoryAction::RolledBack);
    assert_eq!(last.label, "panicky advance");
    let function = hotreload_runtime::function("rollback_on_panic::advance").unwrap();
    assert_eq!(
        function.slot().get(),
        function.original(),
        "the plain code again"
    );
    assert_eq!(
        advance(&mut position, 1),
        11,
        "later calls run the code rolled back to"
    );

    // A `String` moved into the call cannot be passed again: the panic goes on to the caller,
    // and the update is rolled back all the same.
    patch_with_contained_entry("rollback_on_panic::consume", "panicky consume");
    PANIC_ONCE.store(true, Ordering::SeqCst);
    let caught = std::panic::catch_unwind(|| consume("ada".to_owned()));
    let payload = caught.expect_err("the panic reached the caller");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("could not consume ada")
    );
    let panic = settled_panic(2);
    assert!(!panic.rerun, "{panic:?}");
    assert_eq!(panic.rolled_back, ["panicky consume"]);
    assert_eq!(consume("bob".to_owned()), 3);

    // Outside the tool, each rollback is in the audit log.
    let text = std::fs::read_to_string(&log).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON lines"))
        .filter(|entry: &serde_json::Value| entry["event"] == "rollback_on_panic")
        .collect();
    assert_eq!(events.len(), 2, "{text}");
    assert_eq!(events[0]["function"], "rollback_on_panic::advance");
    assert_eq!(events[0]["rolled_back"][0], "panicky advance");
    let _ = std::fs::remove_dir_all(&dir);
}
