//! The base record: what a patch needs to know about the build it patches (its identity, and
//! each workspace crate's rustc invocation and sources), written when the host is built.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hotreload_runtime::wire::patch_file::{sha256_hex, BuildIdentity};
use serde::{Deserialize, Serialize};

use crate::host::capture::{self, Invocation};
use crate::host::sources::hash_sources;
use crate::host::toolchain::{rustc_version, toolchain_lld_dir};
use crate::object::read::read_build_id;

/// A recorded base build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaseRecord {
    /// What a patch must match.
    pub identity: BuildIdentity,
    /// The host executable, copied into the record.
    pub executable: PathBuf,
    /// The workspace the host was built from.
    pub workspace_root: PathBuf,
    /// Every workspace crate of the build.
    pub crates: Vec<CrateRecord>,
    /// The toolchain's `gcc-ld` directory holding `ld.lld`, if it ships one.
    #[serde(default)]
    pub lld_dir: Option<PathBuf>,
    /// For a self-contained record: the build's target profile directory, whose files the
    /// record holds a copy of under `target/`.
    #[serde(default)]
    pub portable_from: Option<PathBuf>,
}

/// One workspace crate of a base build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrateRecord {
    /// The crate's name as rustc knows it.
    pub name: String,
    /// `lib`, `rlib`, `bin`, `proc-macro`, ...
    pub crate_types: Vec<String>,
    /// How cargo compiled it.
    pub invocation: Invocation,
    /// The cargo features it was compiled with.
    pub features: Vec<String>,
    /// Each source file with its sha256 at base time.
    pub sources: BTreeMap<PathBuf, String>,
}

impl CrateRecord {
    /// Whether it is a library that a patch can replace.
    pub fn is_patchable_library(&self) -> bool {
        self.crate_types.iter().all(|t| t == "lib" || t == "rlib")
    }

    /// The library cargo built of this crate (`lib<name><extra>.rlib` in its output directory).
    pub fn built_rlib(&self) -> PathBuf {
        let invocation = &self.invocation;
        let out_dir = Path::new(invocation.flag_value("--out-dir").unwrap_or("."));
        let extra = invocation.codegen_option("extra-filename").unwrap_or("");
        out_dir.join(format!("lib{}{extra}.rlib", self.name))
    }

    /// The base build's library of this crate as kept in the base record's directory, if kept.
    pub fn base_rlib(&self, base_dir: &Path) -> Option<PathBuf> {
        let name = self.built_rlib().file_name()?.to_owned();
        Some(base_dir.join(LIBRARIES_DIR).join(name)).filter(|path| path.is_file())
    }

    /// Whether a patch can replace its code: a library, or the binary the process runs (whose
    /// changed functions other than `main` are redirected like any other).
    pub fn is_patchable(&self) -> bool {
        self.is_patchable_library() || self.is_binary()
    }

    /// The crate's name in the tool's work files: a binary may have its library's name.
    pub fn key(&self) -> String {
        if self.is_binary() {
            format!("{}-bin", self.name)
        } else {
            self.name.clone()
        }
    }

    /// Whether it is a binary crate.
    pub fn is_binary(&self) -> bool {
        self.crate_types.iter().all(|t| t == "bin")
    }

    /// The base's text of a source file, from the copy kept in the base record's directory.
    pub fn base_text(&self, base_dir: &Path, path: &Path) -> Option<String> {
        let hash = self.sources.get(path)?;
        std::fs::read_to_string(base_dir.join(SOURCES_DIR).join(hash)).ok()
    }

    /// Where the record's copy of the base's version of a source file is.
    pub fn base_copy(&self, base_dir: &Path, path: &Path) -> Option<PathBuf> {
        let hash = self.sources.get(path)?;
        Some(base_dir.join(SOURCES_DIR).join(hash))
    }

    /// Whether this crate was compiled against `crate_name` (`--extern crate_name=...`).
    pub fn depends_on(&self, crate_name: &str) -> bool {
        let prefix = format!("{crate_name}=");
        self.invocation
            .args
            .windows(2)
            .any(|pair| pair[0] == "--extern" && pair[1].starts_with(&prefix))
    }

    /// Source files whose content differs from the base (or that disappeared).
    pub fn changed_sources(&self) -> Vec<PathBuf> {
        self.sources
            .iter()
            .filter(|(path, hash)| {
                std::fs::read(path)
                    .map(|bytes| &sha256_hex(&bytes) != *hash)
                    .unwrap_or(true)
            })
            .map(|(path, _)| path.clone())
            .collect()
    }
}

/// The record's file in its directory.
pub(super) const RECORD_FILE: &str = "base.json";

/// Whether two paths name the same directory (through symbolic links too).
fn same_dir(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(a), Ok(b)) if a == b
        )
}

/// Where copies of the base's source files are kept, by content hash.
pub(super) const SOURCES_DIR: &str = "sources";

impl BaseRecord {
    /// Records a base from a finished host build.
    pub fn record(
        dir: &Path,
        capture_dir: &Path,
        built_executable: &Path,
        workspace_root: &Path,
        profile: &str,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let executable = dir.join(
            built_executable
                .file_name()
                .context("the built executable has no file name")?,
        );
        std::fs::copy(built_executable, &executable).with_context(|| {
            format!(
                "copying {} to {}",
                built_executable.display(),
                executable.display()
            )
        })?;
        let build_id = read_build_id(&executable)?;
        let crates = crate_records(capture_dir, workspace_root, dir)?;
        keep_libraries(&crates, dir)?;
        let rustc_path = crates
            .first()
            .map(|c| c.invocation.rustc.clone())
            .unwrap_or_else(|| PathBuf::from("rustc"));
        let (rustc, host) = rustc_version(&rustc_path)?;
        let lld_dir = toolchain_lld_dir(&rustc_path, &host);
        let target = crates
            .first()
            .and_then(|c| c.invocation.flag_value("--target").map(str::to_owned))
            .unwrap_or(host);
        let lock = std::fs::read(workspace_root.join("Cargo.lock")).unwrap_or_default();
        let record = BaseRecord {
            identity: BuildIdentity {
                build_id,
                rustc,
                target,
                profile: profile.to_owned(),
                cargo_lock_sha256: sha256_hex(&lock),
            },
            executable,
            workspace_root: workspace_root.to_owned(),
            crates,
            lld_dir,
            portable_from: None,
        };
        let path = dir.join(RECORD_FILE);
        std::fs::write(&path, serde_json::to_vec_pretty(&record)?)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(record)
    }

    /// Reads a base record directory.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(RECORD_FILE);
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "no base build recorded at {}; run `cargo hotpatch run` first (or pass --base)",
                dir.display()
            )
        })?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Where copies of the base build's libraries of the workspace crates are kept: cargo's own are
/// replaced by the next build, and a patch compares its functions with the base's.
pub(crate) const LIBRARIES_DIR: &str = "libraries";

/// Copies each patchable library crate's rlib, as the base build left it, into the record.
fn keep_libraries(crates: &[CrateRecord], dir: &Path) -> anyhow::Result<()> {
    let kept = dir.join(LIBRARIES_DIR);
    let _ = std::fs::remove_dir_all(&kept);
    std::fs::create_dir_all(&kept).with_context(|| format!("creating {}", kept.display()))?;
    for record in crates.iter().filter(|c| c.is_patchable_library()) {
        let rlib = record.built_rlib();
        let Some(name) = rlib.file_name() else {
            continue;
        };
        // A crate cargo did not build as a library leaves nothing to compare with.
        if rlib.is_file() {
            std::fs::copy(&rlib, kept.join(name))
                .with_context(|| format!("copying {}", rlib.display()))?;
        }
    }
    Ok(())
}

/// The records of the workspace crates whose rustc invocations were captured in `capture_dir`,
/// sorted by name; their sources are hashed and kept under the record directory `dir`.
fn crate_records(
    capture_dir: &Path,
    workspace_root: &Path,
    dir: &Path,
) -> anyhow::Result<Vec<CrateRecord>> {
    let mut crates = Vec::new();
    for invocation in capture::read_all(capture_dir)? {
        // The capture directory lives in the target directory, which other workspaces may
        // share; cargo runs this workspace's members' rustc in its root.
        if !same_dir(&invocation.cwd, workspace_root) {
            continue;
        }
        let Some(name) = invocation.crate_name().map(str::to_owned) else {
            continue;
        };
        if name.starts_with("build_script_") || name == "___" {
            continue;
        }
        let sources = match invocation.dep_info_path() {
            Some(path) => hash_sources(&path, &invocation.cwd, &dir.join(SOURCES_DIR))?,
            None => BTreeMap::new(),
        };
        crates.push(CrateRecord {
            name,
            crate_types: invocation
                .crate_types()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            features: invocation.features(),
            invocation,
            sources,
        });
    }
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(crates)
}
