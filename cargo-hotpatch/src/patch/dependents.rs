//! Crates rebuilt because a crate they depend on changed, though their own sources did not: the
//! code a changed crate lends them. Generic and `#[inline]` functions are compiled into the
//! crates that use them, and at opt-level >= 1 rustc inlines small leaf functions into other
//! crates on its own (a one-line `pub fn` became a `lea` in its caller's crate, no symbol left).
//! Such a crate is compiled again against the changed crate's new metadata, and its functions
//! whose machine code changed are redirected like the changed crate's own.
//!
//! Only when needed, since each costs a compile: a changed crate built optimised lends its
//! dependents code whatever the edit; unoptimised, only a changed generic or `#[inline]` item
//! does. A crate depending on a rebuilt one is rebuilt too (its metadata names the old one).

use std::collections::BTreeSet;

use crate::host::{BaseRecord, CrateRecord};
use crate::patch::changes::copied_items::{self, Held};

/// A crate a patch compiles, in an order where each comes after the crates it depends on.
pub struct Replay<'a> {
    pub record: &'a CrateRecord,
    /// Whether its sources changed (else it is rebuilt for a crate it depends on).
    pub changed: bool,
    /// Whether a crate compiled after it depends on it: it then writes its metadata.
    pub lends: bool,
}

/// Whether `record`'s code may be copied into the crates that depend on it.
fn lends_code(base: &BaseRecord, record: &CrateRecord) -> bool {
    let optimised = record
        .invocation
        .codegen_option("opt-level")
        .is_some_and(|level| level != "0");
    record.is_patchable_library()
        && (optimised
            || copied_items::changed(base, record)
                .iter()
                .any(|(_, held)| *held == Held::Copied))
}

/// The crates to compile: `changed`, and every workspace crate that depends (directly or not) on
/// a changed crate that lends its dependents code, dependencies first. (Crates are told apart by
/// [`CrateRecord::key`]: a binary may have its library's name.)
pub fn replay_order<'a>(base: &'a BaseRecord, changed: &[&'a CrateRecord]) -> Vec<Replay<'a>> {
    let changed_keys: BTreeSet<String> = changed.iter().map(|c| c.key()).collect();
    let mut wanted = changed_keys.clone();
    let mut lenders: Vec<&str> = changed
        .iter()
        .filter(|record| lends_code(base, record))
        .map(|record| record.name.as_str())
        .collect();
    while let Some(lender) = lenders.pop() {
        for record in &base.crates {
            let new =
                record.is_patchable() && record.depends_on(lender) && wanted.insert(record.key());
            if new && record.is_patchable_library() {
                lenders.push(&record.name);
            }
        }
    }
    let mut left: Vec<&CrateRecord> = base
        .crates
        .iter()
        .filter(|record| wanted.contains(&record.key()))
        .collect();
    let mut order: Vec<&CrateRecord> = Vec::new();
    while !left.is_empty() {
        // Ready: depends on no library still left.
        let (ready, rest): (Vec<&CrateRecord>, Vec<&CrateRecord>) =
            left.iter().partition(|record| {
                !left.iter().any(|other| {
                    other.is_patchable_library()
                        && other.key() != record.key()
                        && record.depends_on(&other.name)
                })
            });
        if ready.is_empty() {
            // A cycle cannot happen between crates; keep the rest in name order.
            order.extend(rest);
            break;
        }
        order.extend(ready);
        left = rest;
    }
    (0..order.len())
        .map(|at| Replay {
            record: order[at],
            changed: changed_keys.contains(&order[at].key()),
            lends: order[at].is_patchable_library()
                && order[at + 1..]
                    .iter()
                    .any(|later| later.depends_on(&order[at].name)),
        })
        .collect()
}
