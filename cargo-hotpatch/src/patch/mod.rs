//! Building a patch, stage by stage: [`select`] the changed crates, [`compile`] them to objects,
//! compare their functions with the last build ([`changes`]), [`redirect`] their references to
//! the host's private statics, [`analyse`] what they reach, bind every function the edit left
//! alone to the running copy (`host_copies`), [`link`] them into a library that
//! resolves everything else against the running host, check type [`layouts`], and [`package`]
//! the patch file with a copy of the library without debug information or symbol table (the
//! linked one, with both, stays in the work directory for the checks and for debuggers). [`build_including`] is the driver and reads as
//! that list.
//!
//! Patches are built against a base recorded by [`crate::host`]; nothing there depends on this.

pub mod analyse;
pub mod changes;
pub mod compile;
mod dependents;
pub mod entry;
mod host_copies;
mod introduced;
pub mod layouts;
pub mod link;
mod package;
pub mod redirect;
mod refusal;
mod select;
pub mod signing;
mod timings;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use hotreload_runtime::wire::patch_file::PatchFile;

pub use introduced::forget_introduced_statics;
pub use refusal::{NotPatchable, Refusal};

use crate::host::{BaseRecord, CrateRecord, HostFacts};
use compile::warm::WarmCompilers;
use entry::EntryPlan;
use introduced::Introduced;
use link::Linker;
use timings::{Cost, Timings};

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

impl BuiltPatch {
    fn new(path: &Path, file: PatchFile, timings: &Timings) -> Self {
        BuiltPatch {
            path: path.to_owned(),
            file,
            rustc: timings.spent(Cost::Rustc),
            link: timings.spent(Cost::Link),
            analysis: timings.spent(Cost::Analysis),
        }
    }
}

/// What `watch` does once the app has started, before the first save: compiles the base's
/// crates the way patches are compiled and remembers their functions (see
/// [`changes::remember_base_functions`]), then reads what every patch of `base` reads of its
/// executable and of those objects, so the first patch is as fast as the next.
pub fn prepare_first_patch(base: &BaseRecord, work_dir: &Path) -> anyhow::Result<()> {
    let objects = changes::remember_base_functions(base, work_dir)?;
    // After the compile, which must see the sources before the first save changes them.
    HostFacts::of(base)?;
    crate::host::host_functions(&base.executable, &base.identity.build_id)?;
    entry::read_host_functions(base)?;
    host_copies::read_ahead(&objects)
}

/// Builds a patch of every crate whose sources differ from the base: cumulative, so applying it
/// brings the process to the current sources whatever was applied before.
pub fn build(base: &BaseRecord, work_dir: &Path, output: &Path) -> anyhow::Result<BuiltPatch> {
    build_including(base, work_dir, output, &BTreeSet::new(), None)
}

/// [`build`], also rebuilding the library crates named in `also` even if they now equal the base
/// (so an edit reverted to the base's text is patched back like any other edit), with the
/// compilers of `warm` where one waits for a crate. Only `watch` has warm compilers: its patches
/// may change a `#[hot_state]` type's layout with its version kept (serde carries the values).
pub fn build_including(
    base: &BaseRecord,
    work_dir: &Path,
    output: &Path,
    also: &BTreeSet<String>,
    warm: Option<&mut WarmCompilers>,
) -> anyhow::Result<BuiltPatch> {
    let for_watch = warm.is_some();
    let changed = select::changed_crates(base, also)?;
    std::fs::create_dir_all(work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    let linker = Linker::for_base(base.lld_dir.as_deref());
    let mut timings = Timings::default();
    let compiled = compile_changed(base, &changed, work_dir, warm, &mut timings)?;
    let entries = timings.time(Cost::Analysis, || {
        EntryPlan::new(base, &compiled.differing, &compiled.resigned)
    })?;
    let (host, mut introduced) = timings.time(Cost::Analysis, || -> anyhow::Result<_> {
        Ok((HostFacts::of(base)?, Introduced::load(base, work_dir)))
    })?;
    let entry_roots = entries.roots();
    let targets = introduced.redirect_targets(&host.local_data);
    let (objects, symbols) = timings.time(Cost::Link, || {
        linker.merge_for_redirection(compiled.objects, &targets, work_dir)
    })?;
    let (redirections, found) = timings.time(Cost::Analysis, || {
        check_objects(&objects, &targets, &host, &entry_roots, &introduced)
    })?;
    let exported = link_roots(&symbols, &entry_roots);
    let objects = running_copies(
        base,
        objects,
        &compiled.from_base,
        exported,
        work_dir,
        &mut timings,
    )?;
    let library = work_dir.join("patch.so");
    timings.time(Cost::Link, || {
        link_patch(
            &linker,
            &objects,
            &symbols,
            &entry_roots,
            &redirections,
            &library,
        )
    })?;
    // The process maps the library for good: it gets a copy without debug information or symbol
    // table, written while the checks read the linked one.
    let mapped_library = work_dir.join("patch.mapped.so");
    let strip = link::StrippedCopy::start(&library, &mapped_library)?;
    // The layouts are read from the linked library: its debug information is relocated.
    let states = timings.time(Cost::Analysis, || {
        layouts::check_layouts(&host, &changed, &library, &base.identity.profile, for_watch)
    })?;
    // After the layouts: a changed type is the first reason a patch cannot be taken.
    timings.time(Cost::Analysis, || entries.refuse_surviving_callers(base))?;
    let redirects = package::static_redirects(
        &library,
        &redirections,
        &introduced,
        &host.local_data,
        &targets,
    )?;
    // The crates whose sources changed: those rebuilt for them are rebuilt by every patch of them.
    let mut manifest = package::manifest(
        base,
        &changed,
        &found.hot,
        compiled.changed_functions,
        redirects,
        states,
    );
    manifest.entry_redirects = entries.redirects(&library)?;
    timings.time(Cost::Link, || strip.finish())?;
    let file = package::package(manifest, &mapped_library)?;
    introduced.record(&file.id, &library, &found.new_statics)?;
    package::write(&file, output)?;
    Ok(BuiltPatch::new(output, file, &timings))
}

/// Redirects the objects' references to the host's private data and checks what they reach:
/// refuses a changed hot signature and any private static a patch would fork.
fn check_objects(
    objects: &[PathBuf],
    targets: &crate::host::HostLocalData,
    host: &HostFacts,
    entry_roots: &BTreeSet<String>,
    introduced: &Introduced,
) -> anyhow::Result<(redirect::Redirections, analyse::PatchAnalysis)> {
    let origins = introduced.origins(&host.local_data);
    let redirections = redirect::redirect_objects(objects, targets, &origins)?;
    let found = analyse::analyse_objects(objects, targets, entry_roots)?;
    analyse::refuse_changed_signatures(&found, &host.hot)?;
    analyse::refuse_forks(&found, &redirections)?;
    introduced.refuse_forks(&found.new_statics)?;
    Ok((redirections, found))
}

/// Whether the patch library exports or keeps the symbol `name` whatever reaches it: hot code,
/// data the crate shares and the functions whose entries the patch redirects.
fn link_roots<'a>(
    symbols: &'a crate::object::read::ObjectSymbols,
    entry_roots: &'a BTreeSet<String>,
) -> impl Fn(&str) -> bool + 'a {
    |name: &str| {
        link::exports_hot_code(name)
            || symbols.shared_data.contains(name)
            || entry_roots.contains(&changes::machine_code::normalise(name))
    }
}

/// `objects` with every function that can run as the running copy bound to it (see
/// `host_copies`): the objects the link needs (its roots are the symbols `exported` accepts),
/// and the object defining the stubs that do so.
fn running_copies(
    base: &BaseRecord,
    objects: Vec<PathBuf>,
    from_base: &BTreeSet<String>,
    exported: impl Fn(&str) -> bool,
    work_dir: &Path,
    timings: &mut Timings,
) -> anyhow::Result<Vec<PathBuf>> {
    timings.time(Cost::Analysis, || {
        let running = crate::host::host_functions(&base.executable, &base.identity.build_id)?;
        let bindings =
            host_copies::bind_unchanged(&objects, from_base, &running, work_dir, exported)?;
        Ok(bindings.objects.into_iter().chain(bindings.stubs).collect())
    })
}

/// Links the checked objects into the patch library at `library`.
fn link_patch(
    linker: &Linker,
    objects: &[PathBuf],
    symbols: &crate::object::read::ObjectSymbols,
    entry_roots: &BTreeSet<String>,
    redirections: &redirect::Redirections,
    library: &Path,
) -> anyhow::Result<()> {
    // Code referring to its own module's handle needs the C runtime's start files.
    let needs_c_runtime = symbols.undefined.contains("__dso_handle");
    // Pointers in data that the runtime sets after loading must stay writable: no RELRO then.
    let writable_data = !redirections.data_pointers.is_empty();
    linker.link_library(
        objects,
        &symbols.shared_data,
        entry_roots,
        library,
        needs_c_runtime,
        writable_data,
    )
}

/// What compiling the changed crates gave.
struct Compiled<'a> {
    /// Their objects.
    objects: Vec<PathBuf>,
    /// The functions that changed since the last build (what the patch reports).
    changed_functions: Vec<String>,
    /// Each crate with its functions whose code differs from the base build's (mangled).
    differing: Vec<(&'a CrateRecord, Vec<String>)>,
    /// The base's functions whose signature changed (mangled).
    resigned: Vec<String>,
    /// Every function (normalised, mangled) whose code is not the base's, new ones included.
    from_base: BTreeSet<String>,
}

/// Compiles the changed crates (each with the compiler of `warm` that waits for it, if one does),
/// then the crates they lend code to ([`dependents`]) against them, and compares each one's
/// functions with its last build and with the base build. The comparison counts as a check, not
/// as rustc's time.
fn compile_changed<'a>(
    base: &'a BaseRecord,
    changed: &[&'a CrateRecord],
    work_dir: &Path,
    mut warm: Option<&mut WarmCompilers>,
    timings: &mut Timings,
) -> anyhow::Result<Compiled<'a>> {
    let mut compiled = Compiled {
        objects: Vec::new(),
        changed_functions: Vec::new(),
        differing: Vec::new(),
        resigned: Vec::new(),
        from_base: BTreeSet::new(),
    };
    let mut rebuilt = BTreeMap::new();
    for replay in dependents::replay_order(base, changed) {
        let record = replay.record;
        let warm = warm
            .as_deref_mut()
            .filter(|_| replay.changed && record.is_patchable_library())
            .and_then(|w| w.take(&record.name));
        let out_dir = work_dir.join(record.key());
        let inputs = compile::Inputs {
            metadata: replay.lends,
            rebuilt: rebuilt.clone(),
        };
        let crate_objects = timings.time(Cost::Rustc, || {
            compile::compile_to_objects(record, &out_dir, warm, &inputs)
        })?;
        if replay.lends {
            rebuilt.insert(
                record.name.clone(),
                compile::metadata_path(record, &out_dir),
            );
        }
        let changes = timings.time(Cost::Analysis, || {
            changes::changed_since_last_build(base, record, work_dir, &crate_objects)
        })?;
        compiled.changed_functions.extend(changes.changed);
        compiled.differing.push((record, changes.differing));
        compiled.resigned.extend(changes.resigned);
        compiled.from_base.extend(changes.from_base);
        compiled.objects.extend(crate_objects);
    }
    Ok(compiled)
}
