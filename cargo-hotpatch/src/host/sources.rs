//! The source files of a base build: read from rustc's dep-info files, hashed, and a copy of each
//! kept by content hash, so later patches can tell which files and items changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hotreload_runtime::wire::patch_file::sha256_hex;

/// Every source file a dep-info file lists, with its sha256; a copy of each is kept in `store`
/// under its hash, so later patches can tell which items of a file changed.
pub fn hash_sources(
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
