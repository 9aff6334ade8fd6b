//! A key registered more than once (the binary's function and a loaded library's copy of it):
//! every slot of the same signature runs the key's code, commits and rollbacks write them all, and
//! a registration with another signature is left alone.
//!
//! Registrations are made by hand here, the way a loaded library's constructors make them.

use std::any::TypeId;
use std::sync::Mutex;

use hotreload_runtime::__private::{inventory, HotFunction, HotKey, HotSlot};
use hotreload_runtime::{Table, Update};

static SERIAL: Mutex<()> = Mutex::new(());

type Wide = fn(u64) -> u64;
type Narrow = fn(u32) -> u32;

fn host_code(x: u64) -> u64 {
    x + 1
}
fn copy_code(x: u64) -> u64 {
    x + 2
}
fn wide_v2(x: u64) -> u64 {
    x + 100
}
fn narrow_code(x: u32) -> u32 {
    x + 3
}
fn narrow_v2(x: u32) -> u32 {
    x + 300
}

const SHARED: HotKey = HotKey {
    module_path: "multi_slot",
    self_ty: None,
    trait_name: None,
    name: "shared",
};
const MIXED: HotKey = HotKey {
    module_path: "multi_slot",
    self_ty: None,
    trait_name: None,
    name: "mixed",
};

static HOST_SLOT: HotSlot = HotSlot::new(host_code as Wide as *const ());
static COPY_SLOT: HotSlot = HotSlot::new(copy_code as Wide as *const ());
static MIXED_WIDE_SLOT: HotSlot = HotSlot::new(host_code as Wide as *const ());
static MIXED_NARROW_SLOT: HotSlot = HotSlot::new(narrow_code as Narrow as *const ());

inventory::submit! {
    HotFunction::new(SHARED, host_code as Wide as *const (), host_code as Wide as *const (), "fn(u64) -> u64", 42,
        TypeId::of::<Wide>, &HOST_SLOT, false)
}
inventory::submit! {
    HotFunction::new(SHARED, copy_code as Wide as *const (), copy_code as Wide as *const (), "fn(u64) -> u64", 42,
        TypeId::of::<Wide>, &COPY_SLOT, false)
}
inventory::submit! {
    HotFunction::new(MIXED, host_code as Wide as *const (), host_code as Wide as *const (), "fn(u64) -> u64", 42,
        TypeId::of::<Wide>, &MIXED_WIDE_SLOT, false)
}
inventory::submit! {
    HotFunction::new(MIXED, narrow_code as Narrow as *const (), narrow_code as Narrow as *const (), "fn(u32) -> u32", 43,
        TypeId::of::<Narrow>, &MIXED_NARROW_SLOT, false)
}

fn call_wide(slot: &HotSlot, x: u64) -> u64 {
    // SAFETY: the slots called here only ever hold `Wide` functions.
    let code = unsafe { std::mem::transmute::<*const (), Wide>(slot.get()) };
    code(x)
}

#[test]
fn every_slot_of_a_key_follows_commits_and_rollbacks() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let table = Table::global();
    let first = table.function("multi_slot::shared").unwrap();
    let first_code = first.original();
    // The second registration's slot runs the key's code as soon as the table has seen it.
    assert_eq!(HOST_SLOT.get(), first_code);
    assert_eq!(COPY_SLOT.get(), first_code);
    let before = call_wide(first.slot(), 1);

    let report = table
        .commit(
            Update::new("shared v2")
                .replace(first, wide_v2 as Wide)
                .unwrap(),
        )
        .unwrap();
    assert_eq!(report.changes.len(), 1);
    assert_eq!(call_wide(&HOST_SLOT, 1), 101);
    assert_eq!(call_wide(&COPY_SLOT, 1), 101);
    let info = hotreload_runtime::functions()
        .into_iter()
        .find(|f| f.key == SHARED)
        .unwrap();
    assert_eq!(info.update_id, Some(report.update_id));
    assert!(table.applied_updates().contains(&report.update_id));

    table.rollback().unwrap();
    assert_eq!(call_wide(&HOST_SLOT, 1), before);
    assert_eq!(call_wide(&COPY_SLOT, 1), before);
    let info = hotreload_runtime::functions()
        .into_iter()
        .find(|f| f.key == SHARED)
        .unwrap();
    assert_eq!(info.update_id, None);
    assert!(!table.applied_updates().contains(&report.update_id));
}

#[test]
fn a_registration_with_another_signature_is_never_written() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let table = Table::global();
    let first = table.function("multi_slot::mixed").unwrap();
    // Which registration came first depends on the link order; the other one must stay untouched.
    let (other, other_code, new_code) = if first.fingerprint() == 42 {
        (
            &MIXED_NARROW_SLOT,
            narrow_code as Narrow as *const (),
            wide_v2 as Wide as *const (),
        )
    } else {
        (
            &MIXED_WIDE_SLOT,
            host_code as Wide as *const (),
            narrow_v2 as Narrow as *const (),
        )
    };
    assert_eq!(other.get(), other_code);
    // SAFETY: `new_code` has the type of the first registration's slot, and is never unmapped.
    let update = unsafe { Update::new("mixed v2").replace_raw(first, new_code) };
    table.commit(update).unwrap();
    assert_eq!(first.slot().get(), new_code);
    assert_eq!(other.get(), other_code);
    table.rollback().unwrap();
    assert_eq!(first.slot().get(), first.original());
    assert_eq!(other.get(), other_code);
}
