//! A call already running when its slot is swapped finishes on the code it started in.

use std::sync::{Arc, Barrier};

use hotreload_runtime::{hot, Table, Update};

static STARTED: std::sync::OnceLock<(Arc<Barrier>, Arc<Barrier>)> = std::sync::OnceLock::new();

#[hot]
fn slow_answer() -> &'static str {
    if let Some((started, resume)) = STARTED.get() {
        started.wait();
        resume.wait();
    }
    "old"
}

fn new_answer() -> &'static str {
    "new"
}

#[test]
fn a_running_call_finishes_on_old_code_and_the_next_call_runs_the_new() {
    let started = Arc::new(Barrier::new(2));
    let resume = Arc::new(Barrier::new(2));
    STARTED.set((started.clone(), resume.clone())).unwrap();
    let caller = std::thread::spawn(slow_answer);
    started.wait();

    let table = Table::global();
    let function = table.function("running_calls::slow_answer").unwrap();
    let update = Update::new("new answer")
        .replace(function, new_answer as fn() -> &'static str)
        .unwrap();
    table.commit(update).unwrap();

    resume.wait();
    assert_eq!(caller.join().unwrap(), "old");
    assert_eq!(slow_answer(), "new");
}
