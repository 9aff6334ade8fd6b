//! Building a patch: replay the changed crates' rustc invocations to object files, check them,
//! link them into a library that resolves everything else against the running host.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use hotreload_runtime::patch_file::{
    Manifest, PatchFile, PatchedHotFunction, PatchedState, StaticRedirect,
};

use crate::analysis;
use crate::base::{BaseRecord, CrateRecord};
use crate::capture::Invocation;
use crate::copied_items;
use crate::diff;
use crate::host_facts::HostFacts;
use crate::layout;
use crate::linker::Linker;
use crate::redirect::{self, Redirections};
use crate::states;
use crate::warm::{WarmCompilers, WarmRustc};

/// Why no patch was built, when that is not a failure of the tool.
#[derive(Debug, thiserror::Error)]
pub enum NotPatchable {
    /// No source differs from the base build.
    #[error("no source file differs from the base build: nothing to patch")]
    NothingChanged,
    /// A change that needs a rebuild and restart.
    #[error("{0}")]
    NeedsRestart(String),
}

/// A patch written to disk, and what building it cost.
#[derive(Debug)]
pub struct BuiltPatch {
    /// Where it was written.
    pub path: PathBuf,
    /// The patch file.
    pub file: PatchFile,
    /// Time in rustc.
    pub rustc: Duration,
    /// Time linking.
    pub link: Duration,
    /// Time checking the objects.
    pub analysis: Duration,
}

/// Builds a patch of every crate whose sources differ from the base: cumulative, so applying it
/// brings the process to the current sources whatever was applied before.
pub fn build(base: &BaseRecord, work_dir: &Path, output: &Path) -> anyhow::Result<BuiltPatch> {
    build_including(base, work_dir, output, &BTreeSet::new(), None)
}

/// [`build`], also rebuilding the library crates named in `also` even if they now equal the base
/// (so an edit reverted to the base's text is patched back like any other edit), with the
/// compilers of `warm` where one waits for a crate.
pub fn build_including(
    base: &BaseRecord,
    work_dir: &Path,
    output: &Path,
    also: &BTreeSet<String>,
    mut warm: Option<&mut WarmCompilers>,
) -> anyhow::Result<BuiltPatch> {
    let changed: Vec<&CrateRecord> = base
        .crates
        .iter()
        .filter(|record| {
            !record.changed_sources().is_empty()
                || (also.contains(&record.name) && record.is_patchable_library())
        })
        .collect();
    if changed.is_empty() {
        return Err(NotPatchable::NothingChanged.into());
    }
    for record in &changed {
        if !record.is_patchable_library() {
            let files: Vec<String> = record
                .changed_sources()
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            return Err(NotPatchable::NeedsRestart(format!(
                "crate `{}` ({}) changed ({}); only library crates can be patched, so the app must be rebuilt and restarted (move code you want to patch into a library crate)",
                record.name,
                record.crate_types.join(", "),
                files.join(", ")
            ))
            .into());
        }
    }

    for record in &changed {
        let dependents: Vec<&str> = base
            .crates
            .iter()
            .filter(|other| other.name != record.name && other.depends_on(&record.name))
            .map(|other| other.name.as_str())
            .collect();
        if dependents.is_empty() {
            continue;
        }
        if let Some(item) = copied_items::changed(base, record).first() {
            return Err(NotPatchable::NeedsRestart(format!(
                "`{item}` changed, and it is generic or #[inline], so `{}` compiled copies of it that a patch of `{}` cannot replace; the app must be rebuilt and restarted (make the function #[hot] to patch it)",
                dependents.join("`, `"),
                record.name
            ))
            .into());
        }
    }

    std::fs::create_dir_all(work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    let linker = Linker::for_base(base.lld_dir.as_deref());
    let mut objects = Vec::new();
    let started = Instant::now();
    let mut changed_functions = Vec::new();
    for record in &changed {
        let warm = warm.as_deref_mut().and_then(|w| w.take(&record.name));
        let crate_objects = compile_to_objects(record, &work_dir.join(&record.name), warm)?;
        changed_functions.extend(changed_since_last_build(
            base,
            record,
            work_dir,
            &crate_objects,
        )?);
        objects.extend(crate_objects);
    }
    let rustc = started.elapsed();

    let started = Instant::now();
    let host = HostFacts::of(base)?;
    let (host_hot, host_local_data) = (&host.hot, &host.local_data);
    // Private statics earlier patches introduced are redirected to those patches' copies, like
    // the host's own.
    let mut introduced = Introduced::load(base, work_dir);
    let mut targets = host_local_data.clone();
    for (mangled, origin) in &introduced.statics {
        if let Some(offset) = origin.offset {
            targets.insert(mangled.clone(), offset);
        }
    }
    let merging = Instant::now();
    let undefined = redirect::undefined_symbols(&objects)?;
    if redirect::reaches_across_objects(&undefined, &targets) {
        // Redirection works inside an object: merge the objects, so a private static one codegen
        // unit defines and another reaches is reached inside one.
        let merged = work_dir.join("patch.merged.o");
        linker.merge(&objects, &merged)?;
        objects = vec![merged];
    }
    let merge = merging.elapsed();
    let mut redirections = Redirections::default();
    for object in &objects {
        redirect::redirect_object(object, &targets, host_local_data, &mut redirections)?;
    }
    let found = analysis::analyse_objects(&objects, &targets)?;
    for (identity, fingerprint) in &found.hot {
        if let Some(host_fingerprint) = host_hot.get(identity) {
            if host_fingerprint != fingerprint {
                return Err(NotPatchable::NeedsRestart(format!(
                    "the signature of hot function `{identity}` changed; a running process cannot switch signatures, so the app must be rebuilt and restarted"
                ))
                .into());
            }
        }
    }
    let forked: Vec<(String, &String, &str)> = found
        .reached_statics
        .iter()
        .filter_map(|(mangled, via)| {
            let why = match redirections.unredirectable.get(mangled) {
                Some(why) => why.as_str(),
                None if redirections.redirected.contains(mangled) => return None,
                None => "it is not reached in a way the tool recognises",
            };
            Some((static_name(mangled), via, why))
        })
        .collect();
    if let Some((name, via, why)) = forked.first() {
        // Name every one: the user must see each item the patch would fork.
        let others: Vec<String> = forked[1..]
            .iter()
            .map(|(name, via, why)| format!("`{name}` (used by `{via}`: {why})"))
            .collect();
        return Err(NotPatchable::NeedsRestart(format!(
            "the patched code of `{via}` uses the private static `{name}`, which cannot be redirected to the running process's copy ({why}){}; a patch would silently fork it, so it is refused. Make it `pub` (public statics and thread-locals are shared with patches), then rebuild and restart",
            if others.is_empty() { String::new() } else { format!(" (and {})", others.join(", ")) }
        ))
        .into());
    }
    introduced.refuse_forks(&found.new_statics)?;
    let analysis = started.elapsed() - merge;

    let started = Instant::now();
    let library_path = work_dir.join("patch.so");
    // Code referring to its own module's handle needs the C runtime's start files.
    let needs_c_runtime = undefined.contains("__dso_handle");
    linker.link_library(&objects, &library_path, needs_c_runtime)?;
    let link = merge + started.elapsed();
    // The layouts are read from the linked library: its debug information is relocated.
    let started = Instant::now();
    let states = check_layouts(&host, &changed, &library_path)?;
    let analysis = analysis + started.elapsed();
    let cells = redirect::cell_offsets(
        &library_path,
        redirections
            .address_cells
            .union(&redirections.thread_local_cells),
    )?;
    let redirects = cells
        .iter()
        .map(|(mangled, cell_offset)| {
            let thread_local = redirections.thread_local_cells.contains(mangled);
            let module = introduced
                .statics
                .get(mangled)
                .filter(|_| !host_local_data.contains_key(mangled))
                .map(|origin| origin.patch.clone());
            StaticRedirect {
                name: static_name(mangled),
                cell_offset: *cell_offset,
                host_offset: if thread_local { 0 } else { targets[mangled] },
                thread_local,
                module,
            }
        })
        .collect();

    let library = std::fs::read(&library_path)
        .with_context(|| format!("reading {}", library_path.display()))?;
    let manifest = Manifest {
        base: base.identity.clone(),
        crates: changed.iter().map(|c| c.name.clone()).collect(),
        hot_functions: found
            .hot
            .iter()
            .map(|(path, fingerprint)| PatchedHotFunction {
                path: path.clone(),
                fingerprint: *fingerprint,
            })
            .collect(),
        changed_functions,
        redirects,
        states,
        library_sha256: String::new(),
        library_len: 0,
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let file = PatchFile::new(manifest, library);
    introduced.record(&file.id, &library_path, &found.new_statics)?;
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent).ok();
    }
    std::fs::write(output, file.to_bytes())
        .with_context(|| format!("writing {}", output.display()))?;
    Ok(BuiltPatch {
        path: output.to_owned(),
        file,
        rustc,
        link,
        analysis,
    })
}

/// Private statics that patches built against a base introduced: where each lives, so later
/// (cumulative) patches reach the running copy instead of getting a fresh one.
#[derive(Default)]
struct Introduced {
    file: PathBuf,
    statics: BTreeMap<String, Origin>,
}

/// The patch that introduced a static and its offset in that patch's library (none for a
/// thread-local, which cannot be redirected into a patch).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Origin {
    patch: String,
    offset: Option<u64>,
}

impl Introduced {
    fn load(base: &BaseRecord, work_dir: &Path) -> Self {
        let id = &base.identity.build_id;
        let file = work_dir.join(format!(
            "introduced-statics.{}.json",
            &id[..12.min(id.len())]
        ));
        let statics = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Introduced { file, statics }
    }

    /// Refuses a patch whose live code would get a fresh copy of a static an earlier patch
    /// introduced (one that could not be redirected).
    fn refuse_forks(&self, new_statics: &[(String, String)]) -> anyhow::Result<()> {
        if let Some((mangled, via)) = new_statics
            .iter()
            .find(|(mangled, _)| self.statics.contains_key(mangled) && !is_callsite(mangled))
        {
            return Err(NotPatchable::NeedsRestart(format!(
                "the patched code of `{via}` uses the private static `{}`, which an earlier patch introduced and which cannot be redirected to it; a new patch would get a fresh copy of it instead of the running one, so the app must be rebuilt and restarted (or make the static `pub`: public statics are shared)",
                static_name(mangled)
            ))
            .into());
        }
        Ok(())
    }

    /// Remembers the statics this patch introduces, with their place in its library.
    fn record(
        &mut self,
        patch: &str,
        library: &Path,
        new_statics: &[(String, String)],
    ) -> anyhow::Result<()> {
        let fresh: Vec<&String> = new_statics
            .iter()
            .map(|(mangled, _)| mangled)
            .filter(|mangled| !self.statics.contains_key(*mangled) && !is_callsite(mangled))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let offsets = redirect::data_offsets(library, fresh.iter().copied())?;
        for mangled in fresh {
            self.statics.insert(
                mangled.clone(),
                Origin {
                    patch: patch.to_owned(),
                    offset: offsets.get(mangled).copied(),
                },
            );
        }
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&self.file, serde_json::to_vec(&self.statics)?)
            .with_context(|| format!("writing {}", self.file.display()))
    }
}

/// A `tracing` callsite only caches interest: a fresh copy registers again, harmlessly.
fn is_callsite(mangled: &str) -> bool {
    mangled.contains("__CALLSITE")
}

/// Refuses a patch that changes the layout of a type of the crates it rebuilds: values of the
/// type already live in the process with the old layout. Compares the DWARF of the base build
/// (read once, then kept in the base record's directory) with the patch library's.
///
/// `#[hot_state]` types are the exception: their values are migrated, provided the version was
/// raised. Returns the state types of the patch, for its manifest.
fn check_layouts(
    host: &HostFacts,
    changed: &[&CrateRecord],
    library: &Path,
) -> anyhow::Result<Vec<PatchedState>> {
    let base_states = &host.states;
    let patch_states = states::read(library)?;
    let carried = patch_states
        .iter()
        .map(|record| PatchedState {
            name: record.name.clone(),
            version: record.version,
            layout: record.layout,
        })
        .collect();
    let Some(host_layouts) = &host.layouts else {
        crate::status::warning(
            "the base build has no debug information, so type layouts cannot be checked; set `debug = true` in the profile to have them checked",
        );
        states::migrated_types(base_states, &patch_states, &[])
            .map_err(NotPatchable::NeedsRestart)?;
        return Ok(carried);
    };
    let crates: BTreeSet<String> = changed.iter().map(|c| c.name.clone()).collect();
    let Some(now) = layout::read(library, &crates)? else {
        return Ok(carried);
    };
    let mut types = layout::changed(host_layouts, &now);
    let migrated = states::migrated_types(base_states, &patch_states, &types)
        .map_err(NotPatchable::NeedsRestart)?;
    types.retain(|t| !migrated.contains(t));
    let rebuilt = states::held_by_migrated_state(&now, &patch_states, &migrated, &types)
        .map_err(NotPatchable::NeedsRestart)?;
    if !rebuilt.is_empty() {
        crate::status::warning(format!(
            "{} changed; allowed because `#[hot_state]` values hold it and are migrated. A value of it kept anywhere else (a static, a task's local) would be misread",
            rebuilt.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    types.retain(|t| !rebuilt.contains(t));
    if let Some(first) = types.first() {
        let others = types.len() - 1;
        return Err(NotPatchable::NeedsRestart(format!(
            "the layout of type `{first}`{} changed; values of it in the running process have the old layout, so the app must be rebuilt and restarted (values of a `#[hot_state]` type are migrated instead)",
            if others > 0 { format!(" (and {others} more)") } else { String::new() }
        ))
        .into());
    }
    Ok(carried)
}

/// Where the fingerprints of a crate's functions as last built against `base` are kept.
fn remembered_functions(base: &BaseRecord, record: &CrateRecord, work_dir: &Path) -> PathBuf {
    let id = &base.identity.build_id;
    work_dir.join(format!(
        "{}.{}.functions.json",
        record.name,
        &id[..12.min(id.len())]
    ))
}

/// How many builds' remembered functions of a crate are kept: every rebuild and restart is a
/// new build, and one kept for an older build only serves a patch built against it (`--base`).
const REMEMBERED_BUILDS: usize = 8;

/// Removes a crate's remembered functions of all but the [`REMEMBERED_BUILDS`] latest builds.
fn forget_old_functions(record: &CrateRecord, work_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    let prefix = format!("{}.", record.name);
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
/// base. Then reads the base's [`HostFacts`], so the first patch does not wait for them.
pub fn remember_base_functions(base: &BaseRecord, work_dir: &Path) -> anyhow::Result<()> {
    for record in base.crates.iter().filter(|c| c.is_patchable_library()) {
        forget_old_functions(record, work_dir);
        let remembered = remembered_functions(base, record, work_dir);
        if !record.changed_sources().is_empty() {
            // Compared with the base build's own objects instead.
            let _ = std::fs::remove_file(&remembered);
            continue;
        }
        let objects = compile_quietly(record, &work_dir.join(format!("{}.baseline", record.name)))?;
        if !record.changed_sources().is_empty() {
            // Saved while compiling: rustc may have read the new text, which would make the
            // first patch look like it changes nothing.
            let _ = std::fs::remove_file(&remembered);
            continue;
        }
        let functions = diff::function_fingerprints(&objects)?;
        std::fs::create_dir_all(work_dir)?;
        std::fs::write(&remembered, serde_json::to_vec(&functions)?)
            .with_context(|| format!("writing {}", remembered.display()))?;
    }
    // After the compile, which must see the sources before the first save changes them.
    HostFacts::of(base)?;
    Ok(())
}

/// The functions of a crate whose code differs from its last patch build against this base (or
/// from the base build itself, for the first); remembers the new code for the next comparison.
fn changed_since_last_build(
    base: &BaseRecord,
    record: &CrateRecord,
    work_dir: &Path,
    objects: &[PathBuf],
) -> anyhow::Result<Vec<String>> {
    let remembered = remembered_functions(base, record, work_dir);
    let before = match std::fs::read(&remembered) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => {
            let invocation = &record.invocation;
            let rlib = diff::base_rlib(
                Path::new(invocation.flag_value("--out-dir").unwrap_or(".")),
                &record.name,
                invocation.codegen_option("extra-filename").unwrap_or(""),
            );
            diff::function_fingerprints(&[rlib]).unwrap_or_default()
        }
    };
    let now = diff::function_fingerprints(objects)?;
    let changed = diff::changed_functions(&before, &now, &record.name);
    std::fs::write(&remembered, serde_json::to_vec(&now)?)
        .with_context(|| format!("writing {}", remembered.display()))?;
    Ok(changed)
}

/// A static's name as its user wrote it: a thread-local's hidden inner static is shown as the
/// `thread_local!` it belongs to.
fn static_name(mangled: &str) -> String {
    let name = format!("{:#}", rustc_demangle::demangle(mangled));
    match name.find("::{{constant}}") {
        Some(end) => name[..end].to_owned(),
        None => name,
    }
}

/// Where patch builds keep rustc's incremental state, under the work directory.
const INCREMENTAL_DIR: &str = "rustc-incremental";

/// Codegen units of a patch build when the profile names none: rustc's own default without
/// incremental compilation. Halved the replay's time on a one-line edit; more units gained
/// little and grew the objects to link.
const PATCH_CODEGEN_UNITS: u32 = 16;

/// Replays a crate's captured invocation with `--emit=obj` into `out_dir`; returns the objects,
/// one per codegen unit.
fn compile_to_objects(
    record: &CrateRecord,
    out_dir: &Path,
    warm: Option<WarmRustc>,
) -> anyhow::Result<Vec<PathBuf>> {
    compile(record, out_dir, false, warm)
}

/// [`compile_to_objects`] without diagnostics on the terminal.
fn compile_quietly(record: &CrateRecord, out_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    compile(record, out_dir, true, None)
}

fn compile(
    record: &CrateRecord,
    out_dir: &Path,
    quiet: bool,
    warm: Option<WarmRustc>,
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
        work.join(INCREMENTAL_DIR).join(&record.name)
    });
    let args = replay_args(invocation, out_dir, incremental.as_deref());
    let status = match warm.and_then(|warm| warm.run(&args)) {
        Some(mut rustc) => rustc.wait(),
        None => {
            let mut command = Command::new(&invocation.rustc);
            command
                .args(&args)
                .env_clear()
                .envs(&invocation.env)
                .current_dir(&invocation.cwd);
            if quiet {
                command.stderr(std::process::Stdio::null());
            }
            command.status()
        }
    }
    .with_context(|| format!("running {}", invocation.rustc.display()))?;
    if !status.success() {
        bail!("could not compile `{}`", record.name);
    }
    let mut objects: Vec<PathBuf> = std::fs::read_dir(out_dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "o"))
        .collect();
    objects.sort();
    anyhow::ensure!(
        !objects.is_empty(),
        "rustc wrote no object file for `{}` in {}",
        record.name,
        out_dir.display()
    );
    Ok(objects)
}

/// The captured arguments, changed to write object files only, into `out_dir`, with human
/// diagnostics, no incremental state shared with cargo and no jobserver.
fn replay_args(invocation: &Invocation, out_dir: &Path, incremental: Option<&Path>) -> Vec<String> {
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
    if incremental.is_some() && invocation.codegen_option("codegen-units").is_none() {
        // `--emit=obj` alone means one codegen unit, recompiled whole on every edit; with several,
        // incremental compilation reuses the object code of every unit the edit left alone.
        args.push("-C".to_owned());
        args.push(format!("codegen-units={PATCH_CODEGEN_UNITS}"));
    }
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        args.push("--color=always".to_owned());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Invocation;

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
