//! Applying patch files to this process: check, apply, roll back, and the status report.
//!
//! Every step that can refuse a patch runs before anything changes: reading the file, its
//! integrity (format, lengths, the library's sha256), its base build (the executable's GNU build
//! id), loading the library, and the signature of every hot function it carries. Only then is one
//! [`Update`](crate::Update) committed at a safe point, labelled with the patch id.
//!
//! A loaded library is never closed (a frame may still run in it), and never loaded twice: a patch
//! that was rolled back and is applied again gets its code committed again from the library
//! already loaded.

mod entries;
mod predict;
mod redirects;
mod running;
mod status;
mod update;

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::loader::{self, Loaded};
use crate::platform;
use crate::slot::HotFunction;
use crate::state::StateType;
use crate::sync::lock;
use crate::table::{Table, VersionChange};
use crate::wire::patch_file::PatchFile;
use crate::wire::protocol::{FunctionChange, PatchReport};
pub(crate) use entries::mark_linked_to_tool;
pub use entries::ALLOW_ENTRY_REDIRECTS_ENV;
use predict::{predicted_changes, predicted_states};
pub use status::status;
use update::update_for;

/// Held for a whole check, apply or rollback: they happen one at a time.
static OPERATION: Mutex<()> = Mutex::new(());
/// The id of the patch being applied now, for `status`. Held only briefly.
static APPLYING: Mutex<Option<String>> = Mutex::new(None);
/// Every patch library loaded into the process, oldest first. Held only briefly.
static PATCHES: Mutex<Vec<PatchRecord>> = Mutex::new(Vec::new());

struct PatchRecord {
    id: String,
    crates: Vec<String>,
    /// Never dropped: the list is a static.
    loaded: Loaded,
    /// The update of the patch's last commit.
    update_id: Option<u64>,
    /// When it was last committed.
    applied_unix: Option<u64>,
}

/// The GNU build id of this process's executable, lowercase hex: what a patch's
/// `manifest.base.build_id` must be. Read once from the program headers in memory, then cached.
pub fn build_id() -> Result<&'static str, Error> {
    platform::own_build_id()
}

/// Runs every step of [`apply`] before loading the library (read, integrity, base build, and
/// whether it is applied already) and reports what applying would change. Changes nothing.
///
/// The changes listed are the manifest's hot functions that match a hot function of this
/// process; one whose recorded signature differs is refused as [`apply`] would refuse it.
pub fn check(path: &Path) -> Result<PatchReport, Error> {
    let _one_at_a_time = lock(&OPERATION);
    let started = Instant::now();
    let patch = verify(path)?;
    refuse_if_superseded(&patch)?;
    let already_applied = is_active(&patch.id);
    let (changes, states, entries) = if already_applied {
        (Vec::new(), Vec::new(), None)
    } else {
        let entries = entries::predict(&patch);
        (
            predicted_changes(&patch)?,
            predicted_states(&patch)?,
            entries,
        )
    };
    let verify_us = micros(started.elapsed());
    tracing::info!(
        patch = patch.short_id(),
        already_applied,
        functions = changes.len(),
        states = states.len(),
        "patch checked"
    );
    Ok(PatchReport {
        patch_id: patch.id,
        dry_run: true,
        already_applied,
        changes,
        states,
        verify_us,
        load_us: 0,
        commit_us: 0,
        still_running: Vec::new(),
        entries,
    })
}

/// How an apply may change the process beyond what every patch may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Whether the patch may redirect the entries of functions that are not `#[hot]`, which
    /// stops every thread for a moment (bounded by `HOTRELOAD_MAX_PAUSE_MS`). A process started
    /// by `cargo hotpatch run` or `watch`, or with `HOTRELOAD_ALLOW_ENTRY_REDIRECTS=1`, allows
    /// it anyway.
    pub allow_entry_redirects: bool,
}

/// Verifies, loads and commits the patch file at `path`: all or nothing. A patch already active
/// is reported as `already_applied` and nothing is done. Entry redirects are allowed only where
/// the process allows them (see [`ApplyOptions`]).
pub fn apply(path: &Path) -> Result<PatchReport, Error> {
    apply_with(path, ApplyOptions::default())
}

/// [`apply`] with `options`.
pub fn apply_with(path: &Path, options: ApplyOptions) -> Result<PatchReport, Error> {
    let _one_at_a_time = lock(&OPERATION);
    let result = apply_locked(path, options);
    if let Err(error) = &result {
        tracing::warn!(path = %path.display(), step = error.step(), %error, "patch refused");
    }
    result
}

fn apply_locked(path: &Path, options: ApplyOptions) -> Result<PatchReport, Error> {
    let started = Instant::now();
    let patch = verify(path)?;
    let verify_us = micros(started.elapsed());
    let short = patch.short_id().to_owned();
    let _applying = Applying::start(&patch.id);
    refuse_if_superseded(&patch)?;
    if is_active(&patch.id) {
        tracing::info!(patch = %short, "patch already applied");
        return Ok(already_applied(patch.id, verify_us));
    }
    entries::check_allowed(&patch, options.allow_entry_redirects)?;

    let load_started = Instant::now();
    let (registrations, states, library) = load_once(&patch, &short)?;
    let update = update_for(&patch, &registrations, &states, &library)?;
    let load_us = micros(load_started.elapsed());

    let commit_started = Instant::now();
    let report = Table::global().commit(update)?;
    let commit_us = micros(commit_started.elapsed());
    if let Some(record) = lock(&PATCHES).iter_mut().find(|r| r.id == patch.id) {
        record.update_id = Some(report.update_id);
        record.applied_unix = Some(unix_seconds(SystemTime::now()));
    }
    tracing::info!(
        patch = %short,
        functions = report.changes.len(),
        states = report.states.len(),
        entries = report.entries.as_ref().map_or(0, |e| e.redirected),
        pause = ?report.entries.as_ref().and_then(|e| e.pause),
        verify_us,
        load_us,
        commit_us,
        "patch applied"
    );
    Ok(PatchReport {
        patch_id: patch.id,
        dry_run: false,
        already_applied: false,
        changes: function_changes(&report.changes),
        states: report.states,
        verify_us,
        load_us,
        commit_us,
        still_running: Vec::new(),
        entries: entries::report(report.entries.as_ref()),
    })
}

/// What a patch's library registered, and its path among the loaded objects: loaded now, or
/// found already loaded (a patch rolled back and applied again).
type LoadedParts = (
    Vec<&'static HotFunction>,
    Vec<&'static StateType>,
    std::ffi::CString,
);

/// Loads the library of `patch` unless it is loaded already; see [`LoadedParts`].
fn load_once(patch: &PatchFile, short: &str) -> Result<LoadedParts, Error> {
    let known = lock(&PATCHES)
        .iter()
        .find(|record| record.id == patch.id)
        .map(|record| {
            (
                record.loaded.registrations.clone(),
                record.loaded.states.clone(),
                record.loaded.library.path.clone(),
            )
        });
    match known {
        Some(known) => Ok(known),
        None => {
            let earlier = lock(&PATCHES)
                .iter()
                .map(|record| (record.id.clone(), record.loaded.library.path.clone()))
                .collect();
            let loaded = loader::load(short, &patch.library, &patch.manifest.redirects, &earlier)?;
            let known = (
                loaded.registrations.clone(),
                loaded.states.clone(),
                loaded.library.path.clone(),
            );
            lock(&PATCHES).push(PatchRecord {
                id: patch.id.clone(),
                crates: patch.manifest.crates.clone(),
                loaded,
                update_id: None,
                applied_unix: None,
            });
            Ok(known)
        }
    }
}

/// Undoes the last applied update (normally the last patch) at a safe point.
pub fn rollback() -> Result<PatchReport, Error> {
    let _one_at_a_time = lock(&OPERATION);
    let started = Instant::now();
    let report = Table::global().rollback()?;
    let commit_us = micros(started.elapsed());
    let removed: Vec<(String, std::ffi::CString)> = lock(&PATCHES)
        .iter()
        .filter(|record| record.update_id == Some(report.update_id))
        .map(|record| (record.id.clone(), record.loaded.library.path.clone()))
        .collect();
    let patch = removed.first().map(|(id, _)| id.clone());
    let still_running = running::threads_in(&removed);
    if !still_running.is_empty() {
        tracing::warn!(threads = ?still_running, "threads still run the code this rollback removed");
    }
    // An update committed through the table directly has no patch: its label names it.
    let patch_id = patch
        .or_else(|| label_of(report.update_id))
        .unwrap_or_default();
    tracing::info!(
        patch = %patch_id,
        functions = report.changes.len(),
        states = report.states.len(),
        "patch rolled back"
    );
    Ok(PatchReport {
        patch_id,
        dry_run: false,
        already_applied: false,
        changes: function_changes(&report.changes),
        states: report.states,
        verify_us: 0,
        load_us: 0,
        commit_us,
        entries: entries::report(report.entries.as_ref()),
        still_running,
    })
}

/// Read, integrity, base build.
fn verify(path: &Path) -> Result<PatchFile, Error> {
    let bytes = loader::read_patch_file(path)?;
    let patch = PatchFile::parse(&bytes).map_err(|source| Error::Integrity {
        path: path.to_owned(),
        source,
    })?;
    crate::trust::check(&patch)?;
    redirects::check_cells(&patch)?;
    let own = build_id()?;
    if !patch.manifest.base.build_id.eq_ignore_ascii_case(own) {
        return Err(Error::BaseBuild {
            patch: patch.short_id().to_owned(),
            patch_build: patch.manifest.base.build_id.clone(),
            process_build: own.to_owned(),
        });
    }
    Ok(patch)
}

/// The report of an apply that found the patch applied and did nothing.
fn already_applied(patch_id: String, verify_us: u64) -> PatchReport {
    PatchReport {
        patch_id,
        dry_run: false,
        already_applied: true,
        changes: Vec::new(),
        states: Vec::new(),
        verify_us,
        load_us: 0,
        commit_us: 0,
        still_running: Vec::new(),
        entries: None,
    }
}

/// Names the patch being applied in [`APPLYING`] until dropped, on every way out of an apply.
struct Applying;

impl Applying {
    fn start(id: &str) -> Applying {
        *lock(&APPLYING) = Some(id.to_owned());
        Applying
    }
}

impl Drop for Applying {
    fn drop(&mut self) {
        *lock(&APPLYING) = None;
    }
}

/// Refuses a patch that is applied with a later update applied on top of it: its code no longer
/// runs, so it is neither "already applied" nor safe to commit again (that would go back).
fn refuse_if_superseded(patch: &PatchFile) -> Result<(), Error> {
    let update_id = lock(&PATCHES)
        .iter()
        .find(|record| record.id == patch.id)
        .and_then(|record| record.update_id);
    let Some(update_id) = update_id else {
        return Ok(());
    };
    let applied = Table::global().applied_updates();
    if !applied.contains(&update_id) || applied.last() == Some(&update_id) {
        return Ok(());
    }
    let top = *applied.last().expect("a later update is applied");
    let running = lock(&PATCHES)
        .iter()
        .find(|record| record.update_id == Some(top))
        .map(|record| crate::wire::patch_file::short_id(&record.id).to_owned())
        .or_else(|| label_of(top))
        .unwrap_or_else(|| format!("update {top}"));
    Err(Error::Superseded {
        patch: patch.short_id().to_owned(),
        running,
    })
}

/// Whether the patch's last commit is applied now.
fn is_active(id: &str) -> bool {
    let update_id = lock(&PATCHES)
        .iter()
        .find(|record| record.id == id)
        .and_then(|record| record.update_id);
    update_id.is_some_and(|u| Table::global().applied_updates().contains(&u))
}

fn function_changes(changes: &[VersionChange]) -> Vec<FunctionChange> {
    changes
        .iter()
        .map(|change| FunctionChange {
            key: change.key.to_string(),
            from: change.from,
            to: change.to,
        })
        .collect()
}

fn label_of(update_id: u64) -> Option<String> {
    Table::global()
        .history()
        .into_iter()
        .find(|h| h.update_id == update_id)
        .map(|h| h.label)
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
