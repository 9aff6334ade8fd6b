//! What the base record notes of the toolchain that built the host: rustc's version and host
//! triple, and the `ld.lld` the toolchain ships.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

/// The `gcc-ld` directory of the toolchain (where rustup puts `ld.lld`), if it is there.
pub fn toolchain_lld_dir(rustc: &Path, host: &str) -> Option<PathBuf> {
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
pub fn rustc_version(rustc: &Path) -> anyhow::Result<(String, String)> {
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
