//! Compiling the changed crates: each crate's captured rustc invocation replayed with
//! `--emit=obj` into a directory of its own, with a private incremental state, through a
//! compiler that already waits for it ([`warm`]) where there is one.

pub mod warm;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

use crate::host::capture::Invocation;
use crate::host::CrateRecord;
use warm::WarmRustc;

/// Where patch builds keep rustc's incremental state, under the work directory.
const INCREMENTAL_DIR: &str = "rustc-incremental";

/// Codegen units of a patch build, when the profile names none, per source file of the crate:
/// with incremental compilation rustc gives each module a unit (and another for its generic
/// instances) and merges the smallest units down to the limit. An edit then re-emits its
/// module's units and whatever they were merged with: on the 6,400-line depot (about 50 files) a
/// one-line edit spent 0.5 s in LLVM with 16 units and 0.1 s with 256. Each unit also costs a
/// little whatever the edit (an object to write, compare and link): on the fixture's one-file
/// crate, 256 units made a patch 60 ms slower than 16.
const CODEGEN_UNITS_PER_SOURCE_FILE: usize = 4;
/// The fewest codegen units of a patch build: rustc's own default without incremental
/// compilation.
const MIN_CODEGEN_UNITS: usize = 16;
/// The most codegen units of a patch build: cargo's own default for incremental builds.
const MAX_CODEGEN_UNITS: usize = 256;

/// The codegen units a patch build of `record` asks for when its profile names none.
fn patch_codegen_units(record: &CrateRecord) -> usize {
    (record.sources.len() * CODEGEN_UNITS_PER_SOURCE_FILE)
        .clamp(MIN_CODEGEN_UNITS, MAX_CODEGEN_UNITS)
}

/// What a replay reads and writes beyond what the captured invocation says.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Also write the crate's metadata, for crates compiled against it after it.
    pub metadata: bool,
    /// Crates compiled before this one, each with its new metadata, used instead of the base's.
    pub rebuilt: BTreeMap<String, PathBuf>,
}

/// Replays a crate's captured invocation with `--emit=obj` into `out_dir`; returns the objects,
/// one per codegen unit.
pub fn compile_to_objects(
    record: &CrateRecord,
    out_dir: &Path,
    warm: Option<WarmRustc>,
    inputs: &Inputs,
) -> anyhow::Result<Vec<PathBuf>> {
    compile(record, out_dir, false, warm, inputs)
}

/// [`compile_to_objects`] without diagnostics on the terminal, against the base's crates.
pub fn compile_quietly(record: &CrateRecord, out_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    compile(record, out_dir, true, None, &Inputs::default())
}

/// Where a replay with [`Inputs::metadata`] of `record` into `out_dir` writes its metadata.
pub fn metadata_path(record: &CrateRecord, out_dir: &Path) -> PathBuf {
    let extra = record
        .invocation
        .codegen_option("extra-filename")
        .unwrap_or("");
    out_dir.join(format!("lib{}{extra}.rmeta", record.name))
}

/// rustc refused a crate: its diagnostics, as rustc printed them.
#[derive(Debug, thiserror::Error)]
#[error("could not compile `{crate_name}`:\n{diagnostics}")]
pub struct CompileFailed {
    pub crate_name: String,
    pub diagnostics: String,
}

fn compile(
    record: &CrateRecord,
    out_dir: &Path,
    quiet: bool,
    warm: Option<WarmRustc>,
    inputs: &Inputs,
) -> anyhow::Result<Vec<PathBuf>> {
    if out_dir.exists() {
        std::fs::remove_dir_all(out_dir)
            .with_context(|| format!("clearing {}", out_dir.display()))?;
    }
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let invocation = &record.invocation;
    // One incremental directory per crate, shared by every patch build of it (and the baseline).
    let incremental = out_dir.parent().map(|work| {
        // Tools before this one edited objects through rustc's hard links into `incremental`:
        // what they left there may already be redirected, so it is not reused.
        let _ = std::fs::remove_dir_all(work.join("incremental"));
        work.join(INCREMENTAL_DIR).join(record.key())
    });
    let units = patch_codegen_units(record);
    let mut args = replay_args(invocation, out_dir, incremental.as_deref(), units);
    against_rebuilt(&mut args, inputs);
    let rustc = match warm.and_then(|warm| warm.run(&args)) {
        Some(rustc) => Ok(rustc),
        None => Command::new(&invocation.rustc)
            .args(&args)
            .env_clear()
            .envs(&invocation.env)
            .current_dir(&invocation.cwd)
            .stderr(std::process::Stdio::piped())
            .spawn(),
    }
    .with_context(|| format!("running {}", invocation.rustc.display()))?;
    // The diagnostics are part of the outcome: a failed build's error carries them (`watch`
    // reads them), a successful one's warnings are shown.
    let output = rustc
        .wait_with_output()
        .with_context(|| format!("running {}", invocation.rustc.display()))?;
    let diagnostics = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(CompileFailed {
            crate_name: record.name.clone(),
            diagnostics: diagnostics.into_owned(),
        }
        .into());
    }
    if !quiet {
        eprint!("{diagnostics}");
    }
    let mut objects: Vec<PathBuf> = std::fs::read_dir(out_dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "o"))
        .collect();
    objects.sort();
    // With one codegen unit rustc also writes a copy of it under the crate's own name: the
    // units, when there are any, are the objects (both would define every function).
    if objects.iter().any(|path| is_codegen_unit(path)) {
        objects.retain(|path| is_codegen_unit(path));
    }
    anyhow::ensure!(
        !objects.is_empty(),
        "rustc wrote no object file for `{}` in {}",
        record.name,
        out_dir.display()
    );
    Ok(objects)
}

/// Changes replay arguments to write metadata too, if asked, and to compile against the crates
/// rebuilt before (found through `-L dependency=` by crates that reach them indirectly).
fn against_rebuilt(args: &mut Vec<String>, inputs: &Inputs) {
    let mut extern_next = false;
    for arg in args.iter_mut() {
        if inputs.metadata && arg == "--emit=obj" {
            *arg = "--emit=obj,metadata".to_owned();
        }
        if extern_next {
            let name = arg.split_once('=').map_or(arg.as_str(), |(name, _)| name);
            if let Some(rebuilt) = inputs.rebuilt.get(name) {
                *arg = format!("{name}={}", rebuilt.display());
            }
        }
        extern_next = arg == "--extern";
    }
    for rebuilt in inputs.rebuilt.values() {
        if let Some(dir) = rebuilt.parent() {
            args.push("-L".to_owned());
            args.push(format!("dependency={}", dir.display()));
        }
    }
}

fn is_codegen_unit(path: &Path) -> bool {
    path.to_string_lossy().ends_with(".rcgu.o")
}

/// The captured arguments, changed to write object files only, into `out_dir`, with human
/// diagnostics, no incremental state shared with cargo and no jobserver.
fn replay_args(
    invocation: &Invocation,
    out_dir: &Path,
    incremental: Option<&Path>,
    codegen_units: usize,
) -> Vec<String> {
    let mut args = Vec::with_capacity(invocation.args.len());
    let mut iter = invocation.args.iter().peekable();
    while let Some(arg) = iter.next() {
        if arg.starts_with("--emit=") {
            args.push("--emit=obj".to_owned());
        } else if arg == "--error-format=json" || arg.starts_with("--json=") {
            continue;
        } else if arg == "--out-dir" {
            iter.next();
            args.push("--out-dir".to_owned());
            args.push(out_dir.display().to_string());
        } else if arg == "-C"
            && iter
                .peek()
                .is_some_and(|next| next.starts_with("incremental="))
        {
            // Cargo's incremental state stays cargo's; patches keep their own, if any.
            iter.next();
            if let Some(dir) = incremental {
                args.push("-C".to_owned());
                args.push(format!("incremental={}", dir.display()));
            }
        } else {
            args.push(arg.clone());
        }
    }
    let base_was_incremental = invocation.codegen_option("incremental").is_some();
    if incremental.is_some()
        && base_was_incremental
        && invocation.codegen_option("codegen-units").is_none()
    {
        // `--emit=obj` alone means one codegen unit, recompiled whole on every edit; with several,
        // incremental compilation reuses the object code of every unit the edit left alone.
        // Not for a base built without incremental compilation (an optimised profile): there
        // the replay keeps the base's own units, so every function the edit left alone gets the
        // base's machine code (what was inlined where included) and compares equal to it.
        args.push("-C".to_owned());
        args.push(format!("codegen-units={codegen_units}"));
    }
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        args.push("--color=always".to_owned());
    }
    args
}
