//! Which functions a patch changes: each crate's machine code compared with its last patch build
//! against the same base ([`machine_code`]), remembered between builds in the work directory; and
//! which generic or `#[inline]` items changed in the source ([`copied_items`]).

pub mod base_code;
pub mod copied_items;
mod lists;
pub mod machine_code;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;

use hotreload_runtime::wire::patch_file::short_id;

use crate::host::{BaseRecord, CrateRecord};
use crate::patch::compile::compile_quietly;

/// Where the fingerprints of a crate's functions as last built against `base` are kept.
pub fn remembered_functions(base: &BaseRecord, record: &CrateRecord, work_dir: &Path) -> PathBuf {
    let id = &base.identity.build_id;
    work_dir.join(format!("{}.{}.functions.json", record.key(), short_id(id)))
}

/// How many builds' remembered functions of a crate are kept: every rebuild and restart is a
/// new build, and one kept for an older build only serves a patch built against it (`--base`).
const REMEMBERED_BUILDS: usize = 8;

/// Removes a crate's remembered functions of all but the [`REMEMBERED_BUILDS`] latest builds.
fn forget_old_functions(record: &CrateRecord, work_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    let prefix = format!("{}.", record.key());
    let mut remembered: Vec<(SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with(&prefix)
                && name.ends_with(".functions.json")
                // `a.b.functions.json` only: not another crate whose name starts with this one's.
                && name[prefix.len()..].matches('.').count() == 2
        })
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .collect();
    remembered.sort();
    let excess = remembered.len().saturating_sub(REMEMBERED_BUILDS);
    for (_, path) in &remembered[..excess] {
        let _ = std::fs::remove_file(path);
    }
}

/// Compiles every patchable library of the base as it is now (the base's sources, at the start of
/// `watch`) the way patches are compiled, and remembers its functions, so the first patch's list of
/// changed functions compares like with like. What an earlier session remembered for the same
/// build is replaced: it describes that session's last patch, and the app just started runs the
/// base. Returns the objects compiled.
pub fn remember_base_functions(base: &BaseRecord, work_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut compiled = Vec::new();
    for record in base.crates.iter().filter(|c| c.is_patchable()) {
        forget_old_functions(record, work_dir);
        let remembered = remembered_functions(base, record, work_dir);
        if !record.changed_sources().is_empty() {
            // Compared with the base build's own objects instead.
            let _ = std::fs::remove_file(&remembered);
            continue;
        }
        // Into the directory patches compile into: rustc's incremental state depends on it, and
        // with another one the first patch recompiled most of the crate (4.7 s instead of 1.1 s
        // on the depot).
        let objects = compile_quietly(record, &work_dir.join(record.key()))?;
        if !record.changed_sources().is_empty() {
            // Saved while compiling: rustc may have read the new text, which would make the
            // first patch look like it changes nothing.
            let _ = std::fs::remove_file(&remembered);
            continue;
        }
        let functions = machine_code::function_fingerprints(&objects)?;
        std::fs::create_dir_all(work_dir)?;
        std::fs::write(&remembered, serde_json::to_vec(&functions)?)
            .with_context(|| format!("writing {}", remembered.display()))?;
        if record.is_binary() {
            // The base's own code, which a binary keeps no objects of: compiled just now.
            base_code::remember(base, record, work_dir, &functions)?;
        }
        compiled.extend(objects);
    }
    Ok(compiled)
}

/// The functions of a crate whose code differs from its last patch build against this base (or
/// from the base build itself, for the first), and those whose code differs from the base build;
/// remembers the new code for the next comparison.
pub fn changed_since_last_build(
    base: &BaseRecord,
    record: &CrateRecord,
    work_dir: &Path,
    objects: &[PathBuf],
) -> anyhow::Result<Changes> {
    let remembered = remembered_functions(base, record, work_dir);
    let before = match std::fs::read(&remembered) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => base_code::base_fingerprints(base, record, work_dir)?,
    };
    let now = machine_code::function_fingerprints(objects)?;
    let changed = machine_code::changed_functions(&before, &now, &record.name);
    std::fs::write(&remembered, serde_json::to_vec(&now)?)
        .with_context(|| format!("writing {}", remembered.display()))?;
    let base_code = base_code::base_fingerprints(base, record, work_dir)?;
    let differing = machine_code::differing_functions(&base_code, &now);
    let from_base = now
        .iter()
        .filter(|(name, code)| base_code.get(*name) != Some(*code))
        .map(|(name, _)| name.clone())
        .collect();
    let resigned = machine_code::resigned_functions(&base_code, &now, &record.name);
    Ok(Changes {
        changed,
        differing,
        resigned,
        from_base,
    })
}

/// What changed in one rebuilt crate.
#[derive(Debug, Default)]
pub struct Changes {
    /// Demangled names of its functions whose code differs from its last build (what a report
    /// of this patch lists).
    pub changed: Vec<String>,
    /// Mangled names (normalised) of every function whose code differs from the base build's,
    /// generic instances included: what the running process must stop running.
    pub differing: Vec<String>,
    /// Mangled names of the base's functions of the crate that the patch has under another
    /// symbol only: their signature changed.
    pub resigned: Vec<String>,
    /// Every function (normalised, mangled) whose code is not the base's, new ones included:
    /// what cannot run as the running copy.
    pub from_base: std::collections::BTreeSet<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::host::capture::Invocation;

    #[test]
    fn only_the_latest_builds_functions_of_a_crate_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let record = CrateRecord {
            name: "logic".to_owned(),
            crate_types: vec!["lib".to_owned()],
            invocation: Invocation {
                rustc: PathBuf::from("rustc"),
                args: Vec::new(),
                cwd: dir.path().to_path_buf(),
                env: Default::default(),
            },
            features: Vec::new(),
            sources: Default::default(),
        };
        let start = SystemTime::now() - Duration::from_secs(3600);
        let write = |name: &str, age: u64| {
            let path = dir.path().join(name);
            let file = std::fs::File::create(&path).unwrap();
            file.set_modified(start + Duration::from_secs(age)).unwrap();
        };
        for build in 0..REMEMBERED_BUILDS as u64 + 3 {
            write(&format!("logic.{build:012}.functions.json"), build);
        }
        write("logic_extra.000000000000.functions.json", 0);
        write("logic.introduced.json", 0);
        forget_old_functions(&record, dir.path());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut expected: Vec<String> = (3..REMEMBERED_BUILDS as u64 + 3)
            .map(|build| format!("logic.{build:012}.functions.json"))
            .collect();
        expected.push("logic.introduced.json".to_owned());
        expected.push("logic_extra.000000000000.functions.json".to_owned());
        expected.sort();
        assert_eq!(left, expected);
    }
}
