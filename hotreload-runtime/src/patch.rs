//! Applying patch files to this process: check, apply, roll back, and the status report.
//!
//! Every step that can refuse a patch runs before anything changes: reading the file, its
//! integrity (format, lengths, the library's sha256), its base build (the executable's GNU build
//! id), loading the library, and the signature of every hot function it carries. Only then is one
//! [`Update`] committed at a safe point, labelled with the patch id.
//!
//! A loaded library is never closed (a frame may still run in it), and never loaded twice: a patch
//! that was rolled back and is applied again gets its code committed again from the library
//! already loaded.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::loader::{self, Loaded};
use crate::platform;
use crate::slot::{HotFunction, HotKey};
use crate::state::{self as hot_state, StateType};
use crate::sync::lock;
use crate::table::{HistoryAction, Table, Update, VersionChange};
use crate::wire::patch_file::PatchFile;
use crate::wire::protocol::{
    AppliedPatch, FunctionChange, FunctionStatus, HistoryItem, PatchReport, StateChange,
    StateStatus, StatusReport,
};

/// Held for a whole check, apply or rollback: they happen one at a time.
static OPERATION: Mutex<()> = Mutex::new(());
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
    let already_applied = is_active(&patch.id);
    let (changes, states) = if already_applied {
        (Vec::new(), Vec::new())
    } else {
        (predicted_changes(&patch)?, predicted_states(&patch)?)
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
    })
}

/// Verifies, loads and commits the patch file at `path`: all or nothing. A patch already active
/// is reported as `already_applied` and nothing is done.
pub fn apply(path: &Path) -> Result<PatchReport, Error> {
    let _one_at_a_time = lock(&OPERATION);
    let result = apply_locked(path);
    if let Err(error) = &result {
        tracing::warn!(path = %path.display(), step = error.step(), %error, "patch refused");
    }
    result
}

fn apply_locked(path: &Path) -> Result<PatchReport, Error> {
    let started = Instant::now();
    let patch = verify(path)?;
    let verify_us = micros(started.elapsed());
    let short = patch.short_id().to_owned();
    if is_active(&patch.id) {
        tracing::info!(patch = %short, "patch already applied");
        return Ok(PatchReport {
            patch_id: patch.id,
            dry_run: false,
            already_applied: true,
            changes: Vec::new(),
            states: Vec::new(),
            verify_us,
            load_us: 0,
            commit_us: 0,
        });
    }

    let load_started = Instant::now();
    let known = lock(&PATCHES)
        .iter()
        .find(|record| record.id == patch.id)
        .map(|record| {
            (
                record.loaded.registrations.clone(),
                record.loaded.states.clone(),
            )
        });
    let (registrations, states) = match known {
        Some(known) => known,
        None => {
            let earlier = lock(&PATCHES)
                .iter()
                .map(|record| (record.id.clone(), record.loaded.library.path.clone()))
                .collect();
            let loaded = loader::load(&short, &patch.library, &patch.manifest.redirects, &earlier)?;
            let known = (loaded.registrations.clone(), loaded.states.clone());
            lock(&PATCHES).push(PatchRecord {
                id: patch.id.clone(),
                crates: patch.manifest.crates.clone(),
                loaded,
                update_id: None,
                applied_unix: None,
            });
            known
        }
    };
    let update = update_for(&patch, &registrations, &states)?;
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
    })
}

/// Undoes the last applied update (normally the last patch) at a safe point.
pub fn rollback() -> Result<PatchReport, Error> {
    let _one_at_a_time = lock(&OPERATION);
    let started = Instant::now();
    let report = Table::global().rollback()?;
    let commit_us = micros(started.elapsed());
    let patch = lock(&PATCHES)
        .iter()
        .find(|record| record.update_id == Some(report.update_id))
        .map(|record| record.id.clone());
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
    })
}

/// Every hot function with its version and the patch whose code it runs, the patches loaded, the
/// history of commits and rollbacks, and the bytes of patch libraries kept mapped.
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
    let (patches, mapped_bytes) = {
        let records = lock(&PATCHES);
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
        (patches, mapped)
    };
    let history = history
        .iter()
        .map(|h| HistoryItem {
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
        })
        .collect();
    StatusReport {
        pid: std::process::id(),
        build_id: build_id().map(str::to_owned).unwrap_or_default(),
        functions,
        patches,
        history,
        states: hot_state::states()
            .into_iter()
            .map(|s| StateStatus {
                name: s.name.to_owned(),
                version: s.version,
                values: s.values,
            })
            .collect(),
        mapped_bytes,
    }
}

/// Read, integrity, base build.
fn verify(path: &Path) -> Result<PatchFile, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let patch = PatchFile::parse(&bytes).map_err(|source| Error::Integrity {
        path: path.to_owned(),
        source,
    })?;
    crate::trust::check(&patch)?;
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

/// Whether the patch's last commit is applied now.
fn is_active(id: &str) -> bool {
    let update_id = lock(&PATCHES)
        .iter()
        .find(|record| record.id == id)
        .and_then(|record| record.update_id);
    update_id.is_some_and(|u| Table::global().applied_updates().contains(&u))
}

/// One replacement for each registration of the library under a key the process already has,
/// after checking every signature. A registration under a new key is a new function: the table
/// has taken it in, and only the patch's own code calls it.
///
/// Each `#[hot_state]` type of the library whose layout differs from the version values are kept
/// at gets its values migrated to the library's version; one whose layout changed but whose
/// version did not is refused.
fn update_for(
    patch: &PatchFile,
    registrations: &[&'static HotFunction],
    states: &[&'static StateType],
) -> Result<Update, Error> {
    let table = Table::global();
    let mut update = Update::new(patch.id.clone());
    for &ty in states {
        let running = hot_state::running_type(ty.name(), states);
        if state_to_migrate(patch, running, ty.name(), ty.version(), ty.layout())?.is_some() {
            update = update.migrate_to(ty);
        }
    }
    for &registration in registrations {
        let Some(first) = table.first_registration(registration.key()) else {
            continue;
        };
        if std::ptr::eq(first, registration) {
            tracing::debug!(key = %registration.key(), "patch adds a hot function");
            continue;
        }
        if first.fingerprint() != registration.fingerprint() {
            return Err(Error::SignatureChanged {
                patch: patch.short_id().to_owned(),
                key: first.key().to_string(),
                running: first.signature(),
                patched: registration.signature().to_owned(),
            });
        }
        // SAFETY: equal fingerprints mean the patch's function has the slot's written type
        // (arguments, return type, ABI), and its library stays loaded for the rest of the process.
        update = unsafe { update.replace_raw(first, registration.original()) };
    }
    if update.is_empty() {
        return Err(Error::NoHotFunctions {
            patch: patch.short_id().to_owned(),
        });
    }
    Ok(update)
}

/// The state types applying `patch` would migrate, from its manifest, with the values they have now.
fn predicted_states(patch: &PatchFile) -> Result<Vec<StateChange>, Error> {
    let mut states = Vec::new();
    for carried in &patch.manifest.states {
        let running = hot_state::running_type(&carried.name, &[]);
        let Some(running) = state_to_migrate(
            patch,
            running,
            &carried.name,
            carried.version,
            carried.layout,
        )?
        else {
            continue;
        };
        states.push(StateChange {
            name: carried.name.clone(),
            from: running.version(),
            to: carried.version,
            values: hot_state::live_values(&carried.name),
        });
    }
    Ok(states)
}

/// Whether the patch's version of a state type (`version`, `layout`) needs the values of the
/// version the process runs (`running`; `None` for a type new to it) migrated: returns the running
/// version if so. A changed layout with the same version is refused.
fn state_to_migrate(
    patch: &PatchFile,
    running: Option<&'static StateType>,
    name: &str,
    version: u32,
    layout: u64,
) -> Result<Option<&'static StateType>, Error> {
    let Some(running) = running else {
        tracing::debug!(name, "patch adds a state type");
        return Ok(None);
    };
    if running.layout() == layout {
        return Ok(None);
    }
    if running.version() == version {
        return Err(Error::StateVersionNotRaised {
            patch: patch.short_id().to_owned(),
            name: name.to_owned(),
            version,
        });
    }
    Ok(Some(running))
}

/// What applying `patch` would change, from its manifest: each hot function it carries that
/// matches one of this process's, with its version now and the one the commit would give it.
fn predicted_changes(patch: &PatchFile) -> Result<Vec<FunctionChange>, Error> {
    let table = Table::global();
    let keys: Vec<HotKey> = table.functions().into_iter().map(|f| f.key).collect();
    let mut changes = Vec::new();
    for carried in &patch.manifest.hot_functions {
        let mut matching = keys
            .iter()
            .filter(|key| original_path_matches(&carried.path, key));
        let (Some(&key), None) = (matching.next(), matching.next()) else {
            tracing::debug!(path = %carried.path, "hot function of the manifest not matched");
            continue;
        };
        let Some(running) = table.first_registration(key) else {
            continue;
        };
        if running.fingerprint() != carried.fingerprint {
            return Err(Error::SignatureChanged {
                patch: patch.short_id().to_owned(),
                key: key.to_string(),
                running: running.signature(),
                patched: format!("a type with fingerprint {:016x}", carried.fingerprint),
            });
        }
        if let Some((from, to)) = table.versions_of(key) {
            changes.push(FunctionChange {
                key: key.to_string(),
                from,
                to,
            });
        }
    }
    Ok(changes)
}

/// Whether `path`, the demangled path of a hot function's original code as a manifest records it
/// (with or without the fingerprint suffix), is the original of `key`:
/// `crate::module::name::__hot_original` for a free function,
/// `<crate::module::Type as crate::module::__HotOriginals_..>::__hot_original_name` for a method.
/// The key's own display form is accepted too.
fn original_path_matches(path: &str, key: &HotKey) -> bool {
    fn rest_is(rest: &str, expected: &str) -> bool {
        let Some(after) = rest.strip_prefix(expected) else {
            return false;
        };
        after.is_empty()
            || after.strip_prefix('_').is_some_and(|fingerprint| {
                fingerprint.len() == 16 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit())
            })
    }
    if path == key.to_string() {
        return true;
    }
    match key.self_ty {
        None => path
            .strip_prefix(key.module_path)
            .and_then(|rest| rest.strip_prefix("::"))
            .and_then(|rest| rest.strip_prefix(key.name))
            .is_some_and(|rest| rest_is(rest, "::__hot_original")),
        Some(self_ty) => {
            let head = format!("<{}::{self_ty} as ", key.module_path);
            path.strip_prefix(head.as_str())
                .and_then(|rest| rest.rsplit_once(">::"))
                .and_then(|(_, method)| method.strip_prefix("__hot_original_"))
                .is_some_and(|rest| rest_is(rest, key.name))
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const FREE: HotKey = HotKey {
        module_path: "app::logic",
        self_ty: None,
        trait_name: None,
        name: "fee",
    };
    const METHOD: HotKey = HotKey {
        module_path: "app::logic",
        self_ty: Some("Book"),
        trait_name: None,
        name: "get",
    };

    #[test]
    fn manifest_paths_match_their_keys() {
        for path in [
            "app::logic::fee::__hot_original",
            "app::logic::fee::__hot_original_0123456789abcdef",
            "app::logic::fee",
        ] {
            assert!(original_path_matches(path, &FREE), "{path}");
        }
        for path in [
            "app::logic::fee2::__hot_original",
            "app::logic::fee::__hot_original_12",
            "app::logic::inner::fee::__hot_original",
        ] {
            assert!(!original_path_matches(path, &FREE), "{path}");
        }
        for path in [
            "<app::logic::Book as app::logic::__HotOriginals_00ff00ff00ff00ff>::__hot_original_get",
            "<app::logic::Book as app::logic::__HotOriginals_00ff00ff00ff00ff>::__hot_original_get_0123456789abcdef",
            "app::logic::Book::get",
        ] {
            assert!(original_path_matches(path, &METHOD), "{path}");
        }
        for path in [
            "<app::logic::Book as app::logic::__HotOriginals_00ff00ff00ff00ff>::__hot_original_get_x",
            "<app::logic::Booking as app::logic::__HotOriginals_00ff00ff00ff00ff>::__hot_original_get",
        ] {
            assert!(!original_path_matches(path, &METHOD), "{path}");
        }
    }
}
