//! The status report: every hot function with its version and patch, the patches loaded, the
//! history of commits and rollbacks, the state types and the memory kept mapped.

use super::{build_id, function_changes, lock, unix_seconds, APPLYING, PATCHES};
use crate::state as hot_state;
use crate::table::{HistoryAction, HistoryEntry, Table};
use crate::wire::protocol::{AppliedPatch, FunctionStatus, HistoryItem, StateStatus, StatusReport};

/// How many of the last commits and rollbacks a status report lists; it counts the others.
pub const HISTORY_SHOWN: usize = 64;

/// Every hot function with its version and the patch whose code it runs, the patches loaded, the
/// last [`HISTORY_SHOWN`] commits and rollbacks (and how many earlier ones there were), and the bytes of patch libraries kept mapped.
pub fn status() -> StatusReport {
    let table = Table::global();
    let history = table.history();
    let applied = table.applied_updates();
    let label = |update_id: u64| {
        history
            .iter()
            .find(|h| h.update_id == update_id)
            .map(|h| h.label.clone())
    };
    let functions = table
        .functions()
        .into_iter()
        .map(|f| FunctionStatus {
            key: f.key.to_string(),
            version: f.version,
            patch: f.update_id.and_then(label),
        })
        .collect();
    let (patches, mapped_bytes, libraries) = {
        let records = lock(&PATCHES);
        let libraries: Vec<_> = records
            .iter()
            .map(|record| (record.id.clone(), record.loaded.library.path.clone()))
            .collect();
        let patches = records
            .iter()
            .filter_map(|record| {
                Some(AppliedPatch {
                    id: record.id.clone(),
                    crates: record.crates.clone(),
                    active: record.update_id.is_some_and(|u| applied.contains(&u)),
                    applied_unix: record.applied_unix?,
                })
            })
            .collect();
        let mapped = records
            .iter()
            .map(|record| record.loaded.library.mapped_bytes)
            .sum();
        (patches, mapped, libraries)
    };
    let history_dropped = history.len().saturating_sub(HISTORY_SHOWN);
    let history = history[history_dropped..]
        .iter()
        .map(history_item)
        .collect();
    StatusReport {
        pid: std::process::id(),
        build_id: build_id().map(str::to_owned).unwrap_or_default(),
        functions,
        patches,
        history,
        history_dropped: history_dropped as u64,
        states: hot_state::states()
            .into_iter()
            .map(|s| StateStatus {
                name: s.name.to_owned(),
                version: s.version,
                values: s.values,
            })
            .collect(),
        mapped_bytes,
        quarantined: crate::startup::quarantined(),
        commit_timeout_ms: u64::try_from(table.safe_point_timeout().as_millis())
            .unwrap_or(u64::MAX),
        applying: lock(&APPLYING).clone(),
        long_running: super::running::long_running(&libraries),
        entries: super::entries::status(),
    }
}

/// One commit or rollback of the table's history, as `status` lists it.
fn history_item(h: &HistoryEntry) -> HistoryItem {
    HistoryItem {
        update_id: h.update_id,
        label: h.label.clone(),
        action: match h.action {
            HistoryAction::Committed => "committed",
            HistoryAction::RolledBack => "rolled_back",
        }
        .to_owned(),
        at_unix: unix_seconds(h.at),
        changes: function_changes(&h.changes),
        states: h.states.clone(),
        entries: super::entries::report(h.entries.as_ref()),
    }
}
