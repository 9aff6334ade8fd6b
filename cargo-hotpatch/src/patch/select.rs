//! Selecting what a patch rebuilds: the crates whose sources differ from the base (and those the
//! caller names), refusing at once what no patch can carry: a changed crate that is neither a
//! library nor a binary (a proc macro), or changed attribute macros around a hot method's entry.

use std::collections::BTreeSet;

use crate::host::{BaseRecord, CrateRecord};
use crate::patch::changes::copied_items::{self, Held};
use crate::patch::refusal::{NotPatchable, Refusal};

/// The crates a patch rebuilds: every crate whose sources differ from the base, and the library
/// crates named in `also`.
pub fn changed_crates<'a>(
    base: &'a BaseRecord,
    also: &BTreeSet<String>,
) -> anyhow::Result<Vec<&'a CrateRecord>> {
    let changed: Vec<&CrateRecord> = base
        .crates
        .iter()
        .filter(|record| {
            !record.changed_sources().is_empty()
                || (also.contains(&record.name) && record.is_patchable_library())
        })
        .collect();
    if changed.is_empty() {
        return Err(NotPatchable::NothingChanged.into());
    }
    refuse_unpatchable_types(&changed)?;
    refuse_copied_items(base, &changed)?;
    Ok(changed)
}

/// Only library and binary crates can be patched: a proc macro runs in the compiler.
fn refuse_unpatchable_types(changed: &[&CrateRecord]) -> Result<(), Refusal> {
    for record in changed {
        if !record.is_patchable() {
            return Err(Refusal::UnpatchableCrateChanged {
                krate: record.name.clone(),
                crate_types: record.crate_types.clone(),
                files: record
                    .changed_sources()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            });
        }
    }
    Ok(())
}

/// The attribute macros of a hot method wrap its entry, which the running process keeps. (A
/// changed generic or `#[inline]` item is not refused: the crates holding copies of it are
/// rebuilt with the patch, see `dependents`, and their changed functions redirected.)
fn refuse_copied_items(base: &BaseRecord, changed: &[&CrateRecord]) -> Result<(), Refusal> {
    for record in changed {
        for (item, held) in copied_items::changed(base, record) {
            if held == Held::InEntry {
                return Err(Refusal::EntryAttributeChanged { function: item });
            }
        }
    }
    Ok(())
}
