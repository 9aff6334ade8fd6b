//! Applying approved patches at start: with `HOTRELOAD_PATCH_DIR` naming a directory, [`init`]
//! applies the patch files there that were built for this process's own build, oldest first,
//! before the program serves anything. Files for other builds are left alone.
//!
//! A patch after which the process did not live `HOTRELOAD_QUARANTINE_SECS` (default 60) is
//! quarantined: at the next start its file is renamed `*.hotpatch.quarantined` and not applied
//! again. While a patch is on probation, a marker file `.applying-<patch id>` stands next to it;
//! the process removes it once it has lived long enough.
//!
//! [`init`]: crate::init

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::patch;
use crate::wire::patch_file::PatchFile;

/// How long a process must live after applying a patch at start for the patch to be kept.
const DEFAULT_PROBATION: Duration = Duration::from_secs(60);

/// What applying at start did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StartupReport {
    /// Patch ids applied.
    pub applied: Vec<String>,
    /// Files quarantined because the process died within its probation after applying them.
    pub quarantined: Vec<PathBuf>,
    /// Files refused, with the error.
    pub refused: Vec<(PathBuf, String)>,
}

/// Applies the approved patches of `dir` (see the module documentation).
pub fn apply_patch_dir(dir: &Path) -> StartupReport {
    let mut report = StartupReport::default();
    let probation = std::env::var("HOTRELOAD_QUARANTINE_SECS")
        .ok()
        .and_then(|secs| secs.trim().parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_PROBATION);
    let own_build = match patch::build_id() {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(%error, "cannot apply patches at start");
            return report;
        }
    };
    let Some(candidates) = patches_for_build(dir, own_build, &mut report) else {
        return report;
    };

    let mut on_probation = Vec::new();
    for (_, path, file) in candidates {
        let marker = dir.join(format!(".applying-{}", file.id));
        if marker.exists() {
            let mut quarantined = path.clone().into_os_string();
            quarantined.push(".quarantined");
            let _ = std::fs::rename(&path, &quarantined);
            let _ = std::fs::remove_file(&marker);
            tracing::error!(
                patch = file.short_id(),
                path = %path.display(),
                "the process died within its probation after this patch was applied at start: quarantined, not applied"
            );
            report.quarantined.push(PathBuf::from(quarantined));
            continue;
        }
        let _ = std::fs::write(&marker, format!("{}\n", std::process::id()));
        match patch::apply(&path) {
            Ok(applied) => {
                tracing::info!(
                    patch = file.short_id(),
                    functions = applied.changes.len(),
                    "patch applied at start"
                );
                report.applied.push(file.id.clone());
                on_probation.push(marker);
            }
            Err(error) => {
                let _ = std::fs::remove_file(&marker);
                tracing::error!(path = %path.display(), %error, "patch refused at start");
                report.refused.push((path, error.to_string()));
            }
        }
    }
    if !on_probation.is_empty() {
        end_probation_after(probation, on_probation);
    }
    report
}

/// The patch files of `dir` built for `own_build`, oldest first; files that cannot be read are
/// added to `report` as refused. `None` if the directory cannot be read.
fn patches_for_build(
    dir: &Path,
    own_build: &str,
    report: &mut StartupReport,
) -> Option<Vec<(u64, PathBuf, PatchFile)>> {
    let mut candidates: Vec<(u64, PathBuf, PatchFile)> = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::error!(%error, dir = %dir.display(), "cannot read the patch directory");
            return None;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "hotpatch") {
            continue;
        }
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| PatchFile::parse(&bytes).map_err(|e| e.to_string()));
        match parsed {
            Ok(file) if file.manifest.base.build_id.eq_ignore_ascii_case(own_build) => {
                candidates.push((file.manifest.created_unix, path, file));
            }
            Ok(_) => tracing::debug!(path = %path.display(), "patch for another build: left alone"),
            Err(error) => report.refused.push((path, error)),
        }
    }
    candidates.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Some(candidates)
}

/// Removes the probation markers once `probation` has passed, from a thread of its own.
fn end_probation_after(probation: Duration, markers: Vec<PathBuf>) {
    let spawned = std::thread::Builder::new()
        .name("hotreload-probation".into())
        .spawn(move || {
            std::thread::sleep(probation);
            for marker in markers {
                let _ = std::fs::remove_file(marker);
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot time the patches' probation");
    }
}
