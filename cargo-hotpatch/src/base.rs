//! The base record: what a patch needs to know about the build it patches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use hotreload_runtime::patch_file::{hex, sha256_hex, BuildIdentity};
use object::Object as _;
use serde::{Deserialize, Serialize};

use crate::capture::{self, Invocation};

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

    /// The base's text of a source file, from the copy kept in the base record's directory.
    pub fn base_text(&self, base_dir: &Path, path: &Path) -> Option<String> {
        let hash = self.sources.get(path)?;
        std::fs::read_to_string(base_dir.join(SOURCES_DIR).join(hash)).ok()
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

const RECORD_FILE: &str = "base.json";

/// Whether two paths name the same directory (through symbolic links too).
fn same_dir(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(a), Ok(b)) if a == b
        )
}
/// Where copies of the base's source files are kept, by content hash.
const SOURCES_DIR: &str = "sources";

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

    /// Writes a self-contained copy of this record to `dir`: the record, the executable, the
    /// sources, and the files of the build's target directory that the crates' invocations name
    /// (dependency libraries and build script outputs). Returns how many files were copied.
    pub fn write_portable(&self, dir: &Path) -> anyhow::Result<usize> {
        let profile_dir = self
            .crates
            .iter()
            .find_map(|c| {
                c.invocation
                    .args
                    .iter()
                    .find_map(|a| a.strip_prefix("dependency="))
                    .map(|deps| Path::new(deps).parent().map(Path::to_path_buf))
            })
            .flatten()
            .context("the base's invocations name no dependency directory")?;
        let mut copied = 0;
        let target = dir.join("target");
        // Every library in deps/ (rustc finds transitive dependencies there by name).
        let deps = profile_dir.join("deps");
        std::fs::create_dir_all(target.join("deps"))?;
        for entry in
            std::fs::read_dir(&deps).with_context(|| format!("reading {}", deps.display()))?
        {
            let path = entry?.path();
            let keep = path
                .extension()
                .is_some_and(|ext| ext == "rlib" || ext == "rmeta" || ext == "so");
            if keep {
                std::fs::copy(&path, target.join("deps").join(path.file_name().unwrap()))?;
                copied += 1;
            }
        }
        // Build script outputs the invocations name (`-L native=...`, OUT_DIR).
        for record in &self.crates {
            let invocation = &record.invocation;
            let named = invocation
                .args
                .iter()
                .filter_map(|a| a.strip_prefix("native=").or(a.strip_prefix("all=")))
                .map(str::to_owned)
                .chain(invocation.env.get("OUT_DIR").cloned());
            for path in named.map(PathBuf::from) {
                if let Ok(relative) = path.strip_prefix(&profile_dir) {
                    copied += copy_tree(&path, &target.join(relative))?;
                }
            }
        }
        std::fs::create_dir_all(dir)?;
        let executable = dir.join(self.executable.file_name().context("no executable name")?);
        if executable != self.executable {
            std::fs::copy(&self.executable, &executable)?;
        }
        if let Some(base_dir) = self.executable.parent() {
            copied += copy_tree(&base_dir.join(SOURCES_DIR), &dir.join(SOURCES_DIR))?;
        }
        let mut portable = self.clone();
        portable.executable = executable;
        portable.portable_from = Some(profile_dir);
        let path = dir.join(RECORD_FILE);
        std::fs::write(&path, serde_json::to_vec_pretty(&portable)?)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(copied)
    }

    /// Makes a self-contained record read from `dir` usable here: paths into the original target
    /// directory point into the record's copy, paths into the original workspace into
    /// `workspace_root`, and the executable is the record's copy. Other records are left as they are.
    pub fn relocate(&mut self, dir: &Path, workspace_root: &Path) {
        let Some(profile_dir) = self.portable_from.clone() else {
            return;
        };
        let moves = [
            (
                profile_dir.display().to_string(),
                dir.join("target").display().to_string(),
            ),
            (
                self.workspace_root.display().to_string(),
                workspace_root.display().to_string(),
            ),
        ];
        let relocate = |text: &str| -> String {
            for (from, to) in &moves {
                if let Some(rest) = text.strip_prefix(from.as_str()) {
                    return format!("{to}{rest}");
                }
                if let Some((head, rest)) = text.split_once(from.as_str()) {
                    // `dependency=/old/deps`, `name=/old/lib.rlib`
                    if head.ends_with('=') {
                        return format!("{head}{to}{rest}");
                    }
                }
            }
            text.to_owned()
        };
        for record in &mut self.crates {
            let invocation = &mut record.invocation;
            for arg in &mut invocation.args {
                *arg = relocate(arg);
            }
            for value in invocation.env.values_mut() {
                *value = relocate(value);
            }
            invocation.cwd = PathBuf::from(relocate(&invocation.cwd.display().to_string()));
            if !invocation.rustc.exists() {
                // Another machine's toolchain path: the same toolchain, found on this PATH.
                invocation.rustc = PathBuf::from("rustc");
            }
            record.sources = std::mem::take(&mut record.sources)
                .into_iter()
                .map(|(path, hash)| (PathBuf::from(relocate(&path.display().to_string())), hash))
                .collect();
        }
        if let Some(name) = self.executable.file_name() {
            self.executable = dir.join(name);
        }
        self.workspace_root = workspace_root.to_owned();
        self.portable_from = None;
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

/// The GNU build id of an ELF file, hex.
pub fn read_build_id(path: &Path) -> anyhow::Result<String> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing {}", path.display()))?;
    let id = file
        .build_id()
        .with_context(|| format!("reading the build id of {}", path.display()))?
        .with_context(|| {
            format!(
                "{} has no GNU build id; patchable hosts need one (the default on Linux)",
                path.display()
            )
        })?;
    Ok(hex(id))
}

/// Copies a file or a directory tree; returns the number of files copied.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<usize> {
    if from.is_file() {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
        return Ok(1);
    }
    let mut copied = 0;
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let path = entry?.path();
            copied += copy_tree(&path, &to.join(path.file_name().unwrap_or_default()))?;
        }
    }
    Ok(copied)
}

/// The `gcc-ld` directory of the toolchain (where rustup puts `ld.lld`), if it is there.
fn toolchain_lld_dir(rustc: &Path, host: &str) -> Option<PathBuf> {
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = String::from_utf8(output.stdout).ok()?;
    let dir = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(host)
        .join("bin/gcc-ld");
    dir.join("ld.lld").exists().then_some(dir)
}

/// `release commit-hash` and the host triple, from `rustc -vV`.
fn rustc_version(rustc: &Path) -> anyhow::Result<(String, String)> {
    let output = Command::new(rustc)
        .arg("-vV")
        .output()
        .with_context(|| format!("running {} -vV", rustc.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    Ok((
        format!("{} {}", field("release:"), field("commit-hash:")),
        field("host:"),
    ))
}

/// Every source file a dep-info file lists, with its sha256.
/// Every source file a dep-info file lists, with its sha256; a copy of each is kept in `store`
/// under its hash, so later patches can tell which items of a file changed.
fn hash_sources(
    dep_info: &Path,
    cwd: &Path,
    store: &Path,
) -> anyhow::Result<BTreeMap<PathBuf, String>> {
    let text = std::fs::read_to_string(dep_info)
        .with_context(|| format!("reading {}", dep_info.display()))?;
    let mut sources = BTreeMap::new();
    for line in text.lines() {
        // `target: dep dep ...` lines; the per-file `dep:` lines repeat them.
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        for dep in split_escaped(deps) {
            let path = cwd.join(&dep);
            if let Ok(bytes) = std::fs::read(&path) {
                let hash = sha256_hex(&bytes);
                std::fs::create_dir_all(store)?;
                std::fs::write(store.join(&hash), &bytes)
                    .with_context(|| format!("keeping a copy of {}", path.display()))?;
                sources.insert(path, hash);
            }
        }
    }
    Ok(sources)
}

/// Splits a make-style dependency list, where `\ ` is a space inside a path.
fn split_escaped(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                current.push(' ');
                chars.next();
            }
            ' ' => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            other => current.push(other),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}
