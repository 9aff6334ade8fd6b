//! Threads call hot functions in tight loops while another thread commits and rolls back
//! thousands of updates: every call returns the old or the new function's result, nothing else.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use hotreload_runtime::{hot, safe_point, Table, Update};

#[hot]
fn add(x: u64) -> u64 {
    x + 1
}

fn add_v2(x: u64) -> u64 {
    x + 2
}

#[hot]
impl Account {
    fn fee(&self, amount: u64) -> u64 {
        amount / self.divisor
    }
}

struct Account {
    divisor: u64,
}

fn fee_v2(account: &Account, amount: u64) -> u64 {
    amount / account.divisor + 1_000_000
}

const CYCLES: usize = 3_000;

#[test]
fn calls_see_old_or_new_code_while_thousands_of_updates_commit_and_roll_back() {
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let stop = stop.clone();
        let calls = calls.clone();
        // Half the workers take part in safe points, half never call `safe_point`.
        let participates = worker % 2 == 0;
        workers.push(
            std::thread::Builder::new()
                .name(format!("worker-{worker}"))
                .spawn(move || {
                    let account = Account { divisor: 10 };
                    let (mut old, mut new) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..100 {
                            match add(40) {
                                41 => old += 1,
                                42 => new += 1,
                                other => panic!("add returned {other}"),
                            }
                            let fee = account.fee(100);
                            assert!(fee == 10 || fee == 1_000_010, "fee returned {fee}");
                        }
                        calls.fetch_add(200, Ordering::Relaxed);
                        if participates {
                            safe_point();
                        }
                    }
                    (old, new)
                })
                .unwrap(),
        );
    }

    let table = Table::global();
    let add_fn = table.function("stress::add").unwrap();
    let fee_fn = table.function("stress::Account::fee").unwrap();
    for cycle in 0..CYCLES {
        let update = Update::new(format!("cycle {cycle}"))
            .replace(add_fn, add_v2 as fn(u64) -> u64)
            .unwrap()
            .replace(fee_fn, fee_v2 as fn(&Account, u64) -> u64)
            .unwrap();
        table.commit(update).unwrap();
        table.rollback().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let (mut old, mut new) = (0, 0);
    for worker in workers {
        let (o, n) = worker.join().unwrap();
        old += o;
        new += n;
    }
    assert!(calls.load(Ordering::Relaxed) > 0);
    assert!(old > 0, "the old code never ran");
    assert_eq!(add(40), 41, "every update was rolled back");
    assert_eq!(table.history().len(), 2 * CYCLES);
    // With thousands of switches the new code ran too (unless the machine starved the workers).
    eprintln!("calls: old {old}, new {new}");
}
