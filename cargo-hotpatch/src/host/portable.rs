//! Self-contained base records: a copy of the record, the executable, the sources and the build
//! files the crates' invocations name, that can build patches on another machine or checkout.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::host::record::{BaseRecord, LIBRARIES_DIR, RECORD_FILE, SOURCES_DIR};

impl BaseRecord {
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
            copied += copy_tree(&base_dir.join(LIBRARIES_DIR), &dir.join(LIBRARIES_DIR))?;
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
