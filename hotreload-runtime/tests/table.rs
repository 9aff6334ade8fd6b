//! The table: listing, versions, commit and rollback, history, refusals that change nothing.

use std::sync::Mutex;

use hotreload_runtime::{hot, Error, HistoryAction, Table, Update};

/// Tests of this file share the process's one table; they take turns.
static SERIAL: Mutex<()> = Mutex::new(());

#[hot]
fn price(qty: u64) -> u64 {
    qty * 10
}

#[hot]
fn label(qty: u64) -> String {
    format!("{qty} items")
}

fn price_v2(qty: u64) -> u64 {
    qty * 20
}

fn price_v3(qty: u64) -> u64 {
    qty * 30
}

fn label_v2(qty: u64) -> String {
    format!("{qty} units")
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn version_of(key: &str) -> u32 {
    hotreload_runtime::functions()
        .into_iter()
        .find(|f| f.key.to_string() == key)
        .unwrap()
        .version
}

#[test]
fn lists_registered_functions_with_versions_and_signatures() {
    let _serial = serial();
    let functions = hotreload_runtime::functions();
    let price = functions
        .iter()
        .find(|f| f.key.to_string() == "table::price")
        .expect("price is registered");
    assert_eq!(price.version, 0);
    assert!(!price.replaced);
    assert_eq!(price.signature, "fn(u64) -> u64");
    assert_eq!(price.key.crate_name(), "table");
    assert_eq!(price.key.name, "price");
}

#[test]
fn commits_stack_and_roll_back_in_order() {
    let _serial = serial();
    let table = Table::global();
    let price_fn = table.function("table::price").unwrap();
    let label_fn = table.function("table::label").unwrap();
    let before = table.history().len();

    let first = Update::new("v2")
        .replace(price_fn, price_v2 as fn(u64) -> u64)
        .unwrap()
        .replace(label_fn, label_v2 as fn(u64) -> String)
        .unwrap();
    let report = table.commit(first).unwrap();
    assert_eq!(report.changes.len(), 2);
    assert_eq!((price(1), label(1).as_str()), (20, "1 units"));
    let v2 = version_of("table::price");
    assert!(v2 > 0);

    let second = Update::new("v3")
        .replace(price_fn, price_v3 as fn(u64) -> u64)
        .unwrap();
    table.commit(second).unwrap();
    assert_eq!((price(1), label(1).as_str()), (30, "1 units"));
    assert!(version_of("table::price") > v2);

    table.rollback().unwrap();
    assert_eq!((price(1), label(1).as_str()), (20, "1 units"));
    assert_eq!(version_of("table::price"), v2);

    table.rollback().unwrap();
    assert_eq!((price(1), label(1).as_str()), (10, "1 items"));
    assert_eq!(version_of("table::price"), 0);
    assert!(hotreload_runtime::functions().iter().all(|f| !f.replaced));

    let history = table.history();
    let actions: Vec<_> = history[before..]
        .iter()
        .map(|h| (h.label.as_str(), h.action))
        .collect();
    assert_eq!(
        actions,
        [
            ("v2", HistoryAction::Committed),
            ("v3", HistoryAction::Committed),
            ("v3", HistoryAction::RolledBack),
            ("v2", HistoryAction::RolledBack),
        ]
    );
}

#[test]
fn refused_updates_change_nothing() {
    let _serial = serial();
    let table = Table::global();
    let price_fn = table.function("table::price").unwrap();
    let before = table.history().len();

    let wrong_type = Update::new("wrong").replace(price_fn, label_v2 as fn(u64) -> String);
    assert!(matches!(wrong_type, Err(Error::SignatureMismatch { .. })));

    let twice = Update::new("twice")
        .replace(price_fn, price_v2 as fn(u64) -> u64)
        .unwrap()
        .replace(price_fn, price_v3 as fn(u64) -> u64)
        .unwrap();
    let error = table.commit(twice).unwrap_err();
    assert!(matches!(error, Error::DuplicateEntry { .. }), "{error}");
    assert!(error.to_string().contains("table::price"));

    assert!(matches!(
        table.commit(Update::new("empty")),
        Err(Error::EmptyUpdate)
    ));
    assert_eq!(price(1), 10);
    assert_eq!(table.history().len(), before);
}

#[test]
fn rollback_with_nothing_applied_says_so() {
    let _serial = serial();
    let error = Table::global().rollback().unwrap_err();
    assert!(matches!(error, Error::NothingToRollBack), "{error}");
}

#[test]
fn unknown_keys_are_reported_with_the_key() {
    let error = hotreload_runtime::function("table::nope").unwrap_err();
    assert!(error.to_string().contains("table::nope"), "{error}");
}
