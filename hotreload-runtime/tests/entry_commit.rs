//! Entry redirects committed with the table's slots, as a patch's apply and rollback do: in the
//! same swap, all or nothing, stacked (a later commit retargets, adds and restores), and rolled
//! back to exactly what was there before. `#[hot]` functions keep their slot.

// Entry redirection exists on x86-64 Linux only.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

mod support;

use std::hint::black_box;
use std::sync::Mutex;
use std::time::Duration;

use hotreload_runtime::entry::{redirected_entries, EntryLimits, EntryTarget};
use hotreload_runtime::{hot, Error, HistoryAction, Table, Update};
use support::symbols::function_size;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[hot]
fn hot_fee(x: u64) -> u64 {
    x + 1
}

fn hot_fee_v2(x: u64) -> u64 {
    x + 2
}

#[inline(never)]
fn plain_price(x: u64) -> u64 {
    black_box(x) * 10
}

#[inline(never)]
fn plain_price_v2(x: u64) -> u64 {
    black_box(x) * 20
}

#[inline(never)]
fn plain_price_v3(x: u64) -> u64 {
    black_box(x) * 30
}

#[inline(never)]
fn plain_tax(x: u64) -> u64 {
    black_box(x) + 100
}

#[inline(never)]
fn plain_tax_v2(x: u64) -> u64 {
    black_box(x) + 200
}

fn address(f: fn(u64) -> u64) -> usize {
    f as usize
}

fn target(name: &str, from: fn(u64) -> u64, to: fn(u64) -> u64) -> EntryTarget {
    EntryTarget {
        name: name.to_owned(),
        entry: address(from),
        size: function_size(address(from)),
        target: address(to),
    }
}

fn limits() -> EntryLimits {
    EntryLimits {
        max_pause: Duration::from_secs(2),
        retry_for: Duration::from_secs(1),
    }
}

fn update(label: &str, targets: Vec<EntryTarget>) -> Update {
    // SAFETY: every target has the signature of the function it replaces.
    unsafe { Update::new(label).redirect_entries(targets, limits()) }
}

#[test]
fn commits_stack_and_roll_back_to_the_exact_entries_before() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let table = Table::global();
    let first = update(
        "first",
        vec![
            target("plain_price", plain_price, plain_price_v2),
            target("plain_tax", plain_tax, plain_tax_v2),
        ],
    );
    let report = table.commit(first).unwrap();
    let entries = report.entries.expect("the commit set entries");
    assert_eq!((entries.written, entries.redirected), (2, 2));
    assert!(entries.pause.is_some());
    assert_eq!((plain_price(1), plain_tax(1)), (20, 201));

    // Cumulative: the second commit keeps price (new code), drops tax.
    let second = update(
        "second",
        vec![target("plain_price", plain_price, plain_price_v3)],
    );
    let entries = table.commit(second).unwrap().entries.unwrap();
    assert_eq!(
        (entries.retargeted, entries.restored, entries.redirected),
        (1, 1, 1)
    );
    assert_eq!((plain_price(1), plain_tax(1)), (30, 101));

    table.rollback().unwrap();
    assert_eq!(
        (plain_price(1), plain_tax(1)),
        (20, 201),
        "rollback gives back the first commit's redirects"
    );
    table.rollback().unwrap();
    assert_eq!((plain_price(1), plain_tax(1)), (10, 101), "the base's code");
    assert!(redirected_entries().is_empty());
    let history = table.history();
    let last = history.last().unwrap();
    assert_eq!(last.action, HistoryAction::RolledBack);
    assert_eq!(last.entries.as_ref().map(|e| e.restored), Some(2));
}

#[test]
fn an_entry_that_cannot_be_written_leaves_the_hot_slots_unchanged() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let table = Table::global();
    let hot = hotreload_runtime::function("entry_commit::hot_fee").unwrap();
    let mut no_size = target("plain_tax", plain_tax, plain_tax_v2);
    no_size.size = 0;
    let refused = update("refused", vec![no_size])
        .replace(hot, hot_fee_v2 as fn(u64) -> u64)
        .unwrap();
    let error = table.commit(refused).unwrap_err();
    assert!(
        matches!(&error, Error::EntryRedirect { update, .. } if update == "refused"),
        "{error}"
    );
    assert_eq!(error.step(), "entry");
    assert_eq!(hot_fee(1), 2, "the hot function's slot was not swapped");
    assert_eq!(plain_tax(1), 101);

    let both = update("both", vec![target("plain_tax", plain_tax, plain_tax_v2)])
        .replace(hot, hot_fee_v2 as fn(u64) -> u64)
        .unwrap();
    table.commit(both).unwrap();
    assert_eq!((hot_fee(1), plain_tax(1)), (3, 201), "both in one commit");
    table.rollback().unwrap();
    assert_eq!((hot_fee(1), plain_tax(1)), (2, 101));
}
