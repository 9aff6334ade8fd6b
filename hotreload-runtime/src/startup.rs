//! Applying approved patches at start: with `HOTRELOAD_PATCH_DIR` naming a directory, [`init`]
//! applies the patch files there that were built for this process's own build, oldest first,
//! before the program serves anything. Files for other builds are left alone.
//!
//! A patch is quarantined only for a crash attributable to it: a process that applied it died of
//! a fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, which a panic under `panic = "abort"`
//! raises) within `HOTRELOAD_QUARANTINE_SECS` (default 60) of applying it. Then, at the next
//! start, its file is renamed `*.hotpatch.quarantined` and not applied again, and the quarantine
//! is reported on stderr, in the audit log and by `status`.
//!
//! Evidence is kept per process: while its patches are on probation a process keeps a marker
//! `.applying-<patch id>.<pid>` next to them, and a fatal signal writes `.crashed-<pid>` (see
//! `platform::crash_signals`). At start, a marker of a live process (another replica sharing the
//! directory) is no evidence; a marker of a dead process without a crash mark (SIGTERM, SIGKILL,
//! an ordinary exit) is removed and the patch applied. A panic that unwinds out of `main` exits
//! without a signal and is not counted.
//!
//! [`init`]: crate::init

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::patch;
use crate::platform;
use crate::sync::lock;
use crate::wire::patch_file::PatchFile;
use crate::wire::protocol::QuarantinedPatch;

/// How long a process must live after applying a patch at start for the patch to be kept.
const DEFAULT_PROBATION: Duration = Duration::from_secs(60);

/// The patches this process quarantined at start, for `status`.
static QUARANTINED: Mutex<Vec<QuarantinedPatch>> = Mutex::new(Vec::new());

/// What applying at start did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StartupReport {
    /// Patch ids applied.
    pub applied: Vec<String>,
    /// Files quarantined because a process that applied them crashed within its probation.
    pub quarantined: Vec<PathBuf>,
    /// Files refused, with the error.
    pub refused: Vec<(PathBuf, String)>,
}

/// The patches quarantined by this process at start.
pub(crate) fn quarantined() -> Vec<QuarantinedPatch> {
    lock(&QUARANTINED).clone()
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
    if candidates.is_empty() {
        return report;
    }
    let markers = Markers::read(dir);
    let own_pid = std::process::id();
    if let Err(error) = platform::record_crashes_at(&dir.join(format!(".crashed-{own_pid}"))) {
        tracing::warn!(%error, "crashes after applying patches at start cannot be recorded");
    }
    let mut on_probation = Vec::new();
    for (_, path, file) in candidates {
        if let Some(crash) = markers.crash_after(&file.id) {
            quarantine(&path, &file, crash, &mut report);
            continue;
        }
        let marker = dir.join(format!(".applying-{}.{own_pid}", file.id));
        let _ = std::fs::write(&marker, format!("{own_pid}\n"));
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
    markers.clear_dead();
    if on_probation.is_empty() {
        platform::stop_recording_crashes();
    } else {
        end_probation_after(probation, on_probation);
    }
    report
}

/// A crash of a process that applied a patch: its pid and the signal that killed it.
#[derive(Debug, Clone, Copy)]
struct Crash {
    pid: u32,
    signal: Option<i32>,
}

/// The probation markers and crash marks of processes that are no longer running.
struct Markers {
    /// `(patch id, pid, marker path)` of every marker whose process is dead.
    dead: Vec<(String, u32, PathBuf)>,
    /// The crash marks of dead processes: `(pid, signal, path)`.
    crashes: Vec<(u32, Option<i32>, PathBuf)>,
}

impl Markers {
    fn read(dir: &Path) -> Markers {
        let mut markers = Markers {
            dead: Vec::new(),
            crashes: Vec::new(),
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return markers;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            if let Some(pid) = name.strip_prefix(".crashed-").and_then(|p| p.parse().ok()) {
                if !running_elsewhere(pid) {
                    let signal = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    markers.crashes.push((pid, signal, path));
                }
            } else if let Some(rest) = name.strip_prefix(".applying-") {
                // `<id>.<pid>`; an older runtime wrote `<id>` holding the pid.
                let (id, pid) = match rest.rsplit_once('.') {
                    Some((id, pid)) => (id.to_owned(), pid.parse().ok()),
                    None => (
                        rest.to_owned(),
                        std::fs::read_to_string(&path)
                            .ok()
                            .and_then(|s| s.trim().parse().ok()),
                    ),
                };
                match pid {
                    Some(pid) if running_elsewhere(pid) => {}
                    Some(pid) => markers.dead.push((id, pid, path)),
                    None => markers.dead.push((id, 0, path)),
                }
            }
        }
        markers
    }

    /// The crash of a dead process that had `id` on probation, if any.
    fn crash_after(&self, id: &str) -> Option<Crash> {
        self.dead
            .iter()
            .filter(|(marked, _, _)| marked == id)
            .find_map(|(_, pid, _)| {
                self.crashes
                    .iter()
                    .find(|(crashed, _, _)| crashed == pid)
                    .map(|&(pid, signal, _)| Crash { pid, signal })
            })
    }

    /// Removes the markers and crash marks of dead processes: what they said has been acted on.
    fn clear_dead(&self) {
        for (_, _, path) in &self.dead {
            let _ = std::fs::remove_file(path);
        }
        for (_, _, path) in &self.crashes {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether `pid` is another process that is running now. This process's own pid on a marker is
/// an earlier process's (a pid reused, as in a container where the app is always pid 1).
fn running_elsewhere(pid: u32) -> bool {
    pid != std::process::id() && platform::process_alive(pid)
}

/// Renames the patch aside and says so everywhere: stderr, the log, the audit log and `status`.
fn quarantine(path: &Path, file: &PatchFile, crash: Crash, report: &mut StartupReport) {
    let mut quarantined = path.to_owned().into_os_string();
    quarantined.push(".quarantined");
    let quarantined = PathBuf::from(quarantined);
    let renamed = std::fs::rename(path, &quarantined);
    let signal = crash
        .signal
        .map_or_else(|| "a fatal signal".to_owned(), |s| format!("signal {s}"));
    let reason = format!(
        "process {} died of {signal} within its probation after applying this patch at start",
        crash.pid
    );
    eprintln!(
        "hotreload: patch {} ({}) QUARANTINED, not applied: {reason}; the file is now {}",
        file.short_id(),
        path.display(),
        quarantined.display()
    );
    if let Err(error) = &renamed {
        eprintln!("hotreload: could not rename the quarantined patch: {error}");
    }
    tracing::error!(patch = file.short_id(), path = %path.display(), %reason, "patch quarantined");
    #[cfg(unix)]
    crate::control::audit::record_event(
        "quarantine",
        serde_json::json!({
            "patch": file.id,
            "path": path.display().to_string(),
            "reason": reason,
        }),
    );
    lock(&QUARANTINED).push(QuarantinedPatch {
        id: file.id.clone(),
        path: quarantined.display().to_string(),
        reason,
    });
    report.quarantined.push(quarantined);
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

/// Ends the probation once `probation` has passed, from a thread of its own: a crash no longer
/// counts against the patches, and their markers go.
fn end_probation_after(probation: Duration, markers: Vec<PathBuf>) {
    let spawned = std::thread::Builder::new()
        .name("hotreload-probation".into())
        .spawn(move || {
            std::thread::sleep(probation);
            platform::stop_recording_crashes();
            for marker in markers {
                let _ = std::fs::remove_file(marker);
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot time the patches' probation");
    }
}
