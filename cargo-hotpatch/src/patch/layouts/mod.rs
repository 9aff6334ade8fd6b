//! Checking the layouts of the types a patch rebuilds against the base build's, from DWARF
//! ([`type_layouts`]), with `#[hot_state]` types allowed to change when their version is raised
//! ([`states`]).

pub mod debug_info;
#[cfg(test)]
mod real_objects;
pub mod states;
pub mod type_layouts;

use std::collections::BTreeSet;
use std::path::Path;

use hotreload_runtime::wire::patch_file::PatchedState;

use crate::host::{CrateRecord, HostFacts};
use crate::object::dwarf;
use crate::object::read::state_records;
use crate::patch::refusal::Refusal;

/// Refuses a patch that changes the layout of a type of the crates it rebuilds: values of the
/// type already live in the process with the old layout. Compares the DWARF of the base build
/// (read once, then kept in the base record's directory) with the patch library's.
///
/// `#[hot_state]` types are the exception: their values are migrated, provided the version was
/// raised, or, for a patch for `watch` (`bridged`), even when it was not: serde carries those
/// values across (see `hotreload_runtime::state`). Crates whose profile (`profile`) records no types in their debug information are not
/// checked, and a warning says so. Returns the state types of the patch, for its manifest.
pub fn check_layouts(
    host: &HostFacts,
    changed: &[&CrateRecord],
    library: &Path,
    profile: &str,
    bridged: bool,
) -> anyhow::Result<Vec<PatchedState>> {
    let base_states = &host.states;
    let patch_states = state_records(library)?;
    let carried = patch_states
        .iter()
        .map(|record| PatchedState {
            name: record.name.clone(),
            version: record.version,
            layout: record.layout,
        })
        .collect();
    let (checked, unchecked): (Vec<_>, Vec<_>) = changed
        .iter()
        .map(|record| (*record, debug_info::without_types(&record.invocation)))
        .partition(|(_, setting)| setting.is_none());
    let unchecked: Vec<_> = unchecked
        .into_iter()
        .filter_map(|(record, setting)| Some((record, setting?)))
        .collect();
    debug_info::warn_unchecked(&unchecked, profile);
    let host_layouts = host.layouts.as_ref().filter(|_| !checked.is_empty());
    let Some(host_layouts) = host_layouts else {
        if !checked.is_empty() {
            crate::shell::warning(
                "the base build has no debug information (stripped?), so type layouts cannot be checked; set `debug = true` and `strip = false` in the profile to have them checked",
            );
        }
        states::migrated_types(base_states, &patch_states, &[], bridged)?;
        return Ok(carried);
    };
    let crates: BTreeSet<String> = checked.iter().map(|(c, _)| c.name.clone()).collect();
    let Some(now) = dwarf::read(library, &crates)? else {
        return Ok(carried);
    };
    let mut types = type_layouts::changed(host_layouts, &now);
    let migrated = states::migrated_types(base_states, &patch_states, &types, bridged)?;
    types.retain(|t| !migrated.contains(t));
    let rebuilt = states::held_by_migrated_state(&now, &patch_states, &migrated, &types)?;
    if !rebuilt.is_empty() {
        crate::shell::warning(format!(
            "{} changed; allowed because `#[hot_state]` values hold it and are migrated. A value of it kept anywhere else (a static, a task's local) would be misread",
            rebuilt.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    types.retain(|t| !rebuilt.contains(t));
    if !types.is_empty() {
        return Err(Refusal::LayoutChanged { types }.into());
    }
    Ok(carried)
}
