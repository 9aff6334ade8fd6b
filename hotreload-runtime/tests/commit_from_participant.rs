//! A participating thread may commit from its own loop without waiting for itself.

use std::time::Duration;

use hotreload_runtime::{hot, safe_point, Table, Update};

#[hot]
fn own() -> u32 {
    1
}

fn own_v2() -> u32 {
    2
}

#[test]
fn the_committing_thread_does_not_wait_for_itself() {
    std::thread::spawn(|| {
        safe_point();
        let table = Table::global();
        let own_fn = table.function("commit_from_participant::own").unwrap();
        table
            .commit_with_timeout(
                Update::new("own")
                    .replace(own_fn, own_v2 as fn() -> u32)
                    .unwrap(),
                Duration::from_millis(200),
            )
            .unwrap();
        assert_eq!(own(), 2);
        table.rollback().unwrap();
        assert_eq!(own(), 1);
    })
    .join()
    .unwrap();
}
