//! What the app under `watch` runs now, so that each patch's list of changed functions compares
//! with it: the functions remembered for the base and for each patch applied, which patch is
//! active, and changes made from outside `watch` (`cargo hotpatch rollback` from another
//! terminal), noticed by asking the app now and then.
//!
//! The patch pipeline compares a crate's new code with the file it remembered at the last build
//! ([`crate::patch::changes::remembered_functions`]); this puts back the file of the code that
//! runs whenever that is not the last build: after a refused patch, after a rollback.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hotreload_runtime::wire::patch_file::short_id;
use hotreload_runtime::wire::protocol::StatusReport;

use crate::host::BaseRecord;
use crate::patch::changes::remembered_functions;
use crate::shell::status;

/// The remembered functions of every patchable library of a base: each file's contents, or
/// `None` where there was none (the crate is compared with the base build's own objects).
pub(super) type Snapshot = Vec<(PathBuf, Option<Vec<u8>>)>;

/// How often the app is asked whether something outside `watch` changed what it runs.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// The key of the base in [`Running::by_patch`].
const BASE: &str = "";

#[derive(Default)]
pub(super) struct Running {
    /// The remembered functions as they were when each patch (or the base) became active.
    by_patch: HashMap<String, Snapshot>,
    /// How many commits and rollbacks the app had made when `watch` last looked.
    last_update: Option<u64>,
    last_poll: Option<Instant>,
}

/// The remembered functions of `base`'s patchable libraries as they are now.
pub(super) fn snapshot(base: &BaseRecord, work_dir: &Path) -> Snapshot {
    base.crates
        .iter()
        .filter(|c| c.is_patchable_library())
        .map(|record| {
            let path = remembered_functions(base, record, work_dir);
            let bytes = std::fs::read(&path).ok();
            (path, bytes)
        })
        .collect()
}

/// Puts the remembered functions back as they were in `snapshot`.
pub(super) fn restore(snapshot: &Snapshot) {
    for (path, bytes) in snapshot {
        let _ = match bytes {
            Some(bytes) => std::fs::write(path, bytes),
            None => std::fs::remove_file(path),
        };
    }
}

impl Running {
    /// A new app runs its base: nothing is known of it yet.
    pub(super) fn reset(&mut self) {
        *self = Running::default();
    }

    /// Remembers the base's functions, once they are compiled (before the first patch build).
    pub(super) fn remember_base(&mut self, base: &BaseRecord, work_dir: &Path) {
        if !self.by_patch.contains_key(BASE) {
            self.by_patch
                .insert(BASE.to_owned(), snapshot(base, work_dir));
        }
    }

    /// A patch `watch` applied is active: remembers its functions and the app's newest update.
    pub(super) fn applied(
        &mut self,
        patch_id: &str,
        snapshot: Snapshot,
        report: Option<StatusReport>,
    ) {
        self.by_patch.insert(patch_id.to_owned(), snapshot);
        // Unknown, the next look only takes note: never report this patch as made elsewhere.
        self.last_update = report.and_then(|report| updates_made(&report));
        self.last_poll = Some(Instant::now());
    }

    /// Whether it is time to ask the app again.
    pub(super) fn poll_due(&self) -> bool {
        self.last_poll.is_none_or(|at| at.elapsed() >= POLL_EVERY)
    }

    /// Reads the app's status: says what changed since `watch` last looked (commits and
    /// rollbacks made from elsewhere) and, if the active patch changed, puts back the functions
    /// of the code now running, so the next save lists what differs from that.
    pub(super) fn notice(&mut self, report: &StatusReport) {
        self.last_poll = Some(Instant::now());
        let made = updates_made(report);
        let Some(known) = self.last_update else {
            self.last_update = made;
            return;
        };
        if made <= Some(known) {
            return;
        }
        self.last_update = made;
        // A rollback's entry carries the id of the update it undid: count entries instead.
        let new = made.unwrap_or(0).saturating_sub(known) as usize;
        let listed = report.history.len();
        for item in &report.history[listed.saturating_sub(new)..] {
            let verb = if item.action == "rolled_back" {
                "Rolled back"
            } else {
                "Applied"
            };
            status(
                verb,
                format!(
                    "patch {} from outside watch ({} function(s))",
                    short_id(&item.label),
                    item.changes.len()
                ),
            );
        }
        let active = report
            .patches
            .iter()
            .rev()
            .find(|patch| patch.active)
            .map(|patch| patch.id.clone());
        let now_runs = match &active {
            Some(id) => format!("patch {}", short_id(id)),
            None => "its base build".to_owned(),
        };
        status(
            "Running",
            format!("{now_runs} now; the next save patches the current sources over it"),
        );
        match self.by_patch.get(active.as_deref().unwrap_or(BASE)) {
            Some(snapshot) => restore(snapshot),
            // A patch applied from elsewhere: its functions are unknown, compare with the base.
            None => {
                if let Some(base) = self.by_patch.get(BASE) {
                    restore(base);
                }
            }
        }
    }
}

/// How many commits and rollbacks the app has made.
fn updates_made(report: &StatusReport) -> Option<u64> {
    Some(report.history_dropped + report.history.len() as u64)
}
