//! The machine code the running process has: each rebuilt crate's functions as the base build
//! compiled them, which entry redirection compares with the patch's (cumulatively: against the
//! base, never the previous patch, since a redirect replaces the base's code).
//!
//! A library's are in the base's own `.rlib`. A binary keeps no objects, so the record's copy of
//! its base sources is compiled the way the base was, in a directory of its own, with file names
//! mapped back to the real ones (panic locations then compare equal). Either is read once per
//! base and kept in the work directory.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hotreload_runtime::wire::patch_file::short_id;

use super::machine_code::{self, Fingerprints};
use crate::host::{BaseRecord, CrateRecord};
use crate::patch::compile::compile_quietly;

/// The fingerprints of `record`'s functions as the base build compiled them.
pub fn base_fingerprints(
    base: &BaseRecord,
    record: &CrateRecord,
    work_dir: &Path,
) -> anyhow::Result<Fingerprints> {
    let kept = kept_path(base, record, work_dir);
    if let Ok(bytes) = std::fs::read(&kept) {
        if let Ok(fingerprints) = serde_json::from_slice(&bytes) {
            return Ok(fingerprints);
        }
    }
    // Cargo's own rlib is replaced by the next build; the record keeps the base's.
    let base_dir = base.executable.parent().unwrap_or(Path::new("."));
    let kept_rlib = record
        .base_rlib(base_dir)
        .filter(|_| record.is_patchable_library());
    let objects = match kept_rlib {
        Some(rlib) => vec![rlib],
        None => compile_base_sources(base, record, work_dir)?,
    };
    let fingerprints = machine_code::function_fingerprints(&objects)?;
    remember(base, record, work_dir, &fingerprints)?;
    Ok(fingerprints)
}

/// Keeps `fingerprints` as the base build's code of `record` (compiled from the base's sources).
pub fn remember(
    base: &BaseRecord,
    record: &CrateRecord,
    work_dir: &Path,
    fingerprints: &Fingerprints,
) -> anyhow::Result<()> {
    let kept = kept_path(base, record, work_dir);
    std::fs::create_dir_all(work_dir)?;
    std::fs::write(&kept, serde_json::to_vec(fingerprints)?)
        .with_context(|| format!("writing {}", kept.display()))
}

fn kept_path(base: &BaseRecord, record: &CrateRecord, work_dir: &Path) -> PathBuf {
    let id = short_id(&base.identity.build_id);
    work_dir.join(format!("{}.{id}.base-functions.json", record.key()))
}

/// Compiles the base's version of `record`'s sources (the record's copies, laid out under a
/// directory of their own as they are on disk) with the base's invocation; returns the objects.
fn compile_base_sources(
    base: &BaseRecord,
    record: &CrateRecord,
    work_dir: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let base_dir = base
        .executable
        .parent()
        .context("the base executable has no directory")?;
    let dir = work_dir.join("base-code").join(record.key());
    let mirror = dir.join("sources");
    let _ = std::fs::remove_dir_all(&mirror);
    for path in record.sources.keys() {
        let copy = record
            .base_copy(base_dir, path)
            .context("a source file without a copy")?;
        let to = mirrored(&mirror, path);
        std::fs::create_dir_all(to.parent().unwrap_or(&mirror))?;
        std::fs::copy(&copy, &to).with_context(|| {
            format!(
                "copying the base's version of {} from {}: the base record is incomplete; \
                 run `cargo hotpatch run` again",
                path.display(),
                copy.display()
            )
        })?;
    }
    let mut from_base = record.clone();
    let invocation = &mut from_base.invocation;
    let cwd = invocation.cwd.clone();
    let root = invocation
        .args
        .iter_mut()
        .find(|arg| arg.ends_with(".rs") && !arg.starts_with('-'))
        .with_context(|| format!("no crate root in the invocation of `{}`", record.name))?;
    let relative = Path::new(root.as_str()).is_relative();
    *root = mirrored(&mirror, &cwd.join(root.as_str()))
        .display()
        .to_string();
    // The last matching mapping applies: a root given relative to the working directory keeps
    // its relative file name.
    invocation
        .args
        .push(format!("--remap-path-prefix={}=", mirror.display()));
    if relative {
        let prefix = mirrored(&mirror, &cwd);
        invocation
            .args
            .push(format!("--remap-path-prefix={}/=", prefix.display()));
    }
    compile_quietly(&from_base, &dir.join("objects")).with_context(|| {
        format!(
            "compiling the base's sources of `{}` to compare the patch with",
            record.name
        )
    })
}

/// Where the absolute `path` is laid out under `mirror`.
fn mirrored(mirror: &Path, path: &Path) -> PathBuf {
    mirror.join(path.strip_prefix("/").unwrap_or(path))
}
