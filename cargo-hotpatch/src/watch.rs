//! `cargo hotpatch watch`: run the app, and on every save patch what changed into it.
//!
//! The watcher drops metadata and access events, ignores `target/`, hidden files and editors'
//! temporary files, and coalesces a burst of events into one rebuild. A save that changes no file's
//! content does nothing. What cannot be patched (a manifest, a build script, a binary crate, a hot
//! signature) is explained in one line, then the app is rebuilt and restarted, unless
//! `--no-restart` is given.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cargo_metadata::MetadataCommand;
use hotreload_runtime::control::protocol::{Reply, Request};
use hotreload_runtime::patch_file::sha256_hex;
use notify::{EventKind, RecursiveMode, Watcher as _};

use crate::app_link::AppLink;
use crate::cli::WatchArgs;
use crate::client;
use crate::host::{self, BaseRecord, HotpatchDirs};
use crate::patch::changes::machine_code;
use crate::patch::compile::warm::{WarmCompilers, MAX_WAITING};
use crate::patch::{self, NotPatchable};
use crate::status::{error_line, status, warning};

/// How long the tree must stay quiet before a burst of events is handled while a file of it may
/// still be being written.
const QUIET: Duration = Duration::from_millis(15);
/// How long it must stay quiet once every file of the burst was closed after writing or renamed
/// into place: the save is complete, and the wait only joins files saved back to back.
const SETTLED_QUIET: Duration = Duration::from_millis(3);
/// The longest a burst is allowed to postpone handling.
const MAX_BURST: Duration = Duration::from_millis(500);

/// Runs `watch`; returns when the watcher fails.
pub fn watch(args: WatchArgs) -> anyhow::Result<i32> {
    let layout = HotpatchDirs::of(&args.run.selection)?;
    let (events_tx, events) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = events_tx.send(event);
    })
    .context("starting the file watcher")?;
    let roots = watch_roots(&args, &layout)?;
    for (path, mode) in &roots {
        watcher
            .watch(path, *mode)
            .with_context(|| format!("watching {}", path.display()))?;
    }
    let mut session = Session::start(args, layout)?;
    status(
        "Watching",
        format!(
            "{} director{} for changes; save a file to patch the running app",
            roots.len(),
            if roots.len() == 1 { "y" } else { "ies" }
        ),
    );
    loop {
        let Some((paths, first_event)) = next_burst(&events, &mut session)? else {
            continue;
        };
        session.handle(paths, first_event);
    }
}

/// The directories to watch: every workspace member, recursively, except the target directory,
/// plus the workspace root itself for its manifest and lock file.
fn watch_roots(
    args: &WatchArgs,
    layout: &HotpatchDirs,
) -> anyhow::Result<Vec<(PathBuf, RecursiveMode)>> {
    let mut command = MetadataCommand::new();
    command.no_deps();
    if let Some(path) = &args.run.selection.manifest_path {
        command.manifest_path(path);
    }
    let metadata = command
        .exec()
        .context("reading the workspace with `cargo metadata`")?;
    let target = metadata.target_directory.into_std_path_buf();
    let mut roots = vec![(layout.workspace_root.clone(), RecursiveMode::NonRecursive)];
    for package in metadata.packages {
        let Some(dir) = package
            .manifest_path
            .parent()
            .map(|p| p.to_path_buf().into_std_path_buf())
        else {
            continue;
        };
        if target.starts_with(&dir) {
            // The package holds the target directory: watch its other children one by one.
            roots.push((dir.clone(), RecursiveMode::NonRecursive));
            for entry in std::fs::read_dir(&dir)?.flatten() {
                let path = entry.path();
                if path.is_dir() && path != target && !is_hidden(&path) {
                    roots.push((path, RecursiveMode::Recursive));
                }
            }
        } else {
            roots.push((dir, RecursiveMode::Recursive));
        }
    }
    roots.sort();
    roots.dedup();
    Ok(roots)
}

/// Waits for the next burst of relevant events; between bursts, notices the app exiting.
fn next_burst(
    events: &Receiver<notify::Result<notify::Event>>,
    session: &mut Session,
) -> anyhow::Result<Option<(BTreeSet<PathBuf>, Instant)>> {
    let layout = session.layout.clone();
    let layout = &layout;
    let mut burst = Burst::default();
    let first = loop {
        match events.recv_timeout(Duration::from_millis(200)) {
            Ok(event) => {
                burst.add(event, layout);
                if !burst.paths.is_empty() {
                    break Instant::now();
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                session.when_idle();
                return Ok(None);
            }
            Err(RecvTimeoutError::Disconnected) => anyhow::bail!("the file watcher stopped"),
        }
    };
    while first.elapsed() < MAX_BURST {
        match events.recv_timeout(burst.quiet()) {
            Ok(event) => burst.add(event, layout),
            Err(RecvTimeoutError::Timeout) => break,
            Err(RecvTimeoutError::Disconnected) => anyhow::bail!("the file watcher stopped"),
        }
    }
    Ok(Some((burst.paths, first)))
}

/// The relevant paths a burst of events touched.
#[derive(Debug, Default)]
struct Burst {
    paths: BTreeSet<PathBuf>,
    /// Those written to (or renamed away) and not yet closed or renamed into place.
    writing: BTreeSet<PathBuf>,
}

impl Burst {
    fn add(&mut self, event: notify::Result<notify::Event>, layout: &HotpatchDirs) {
        use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
        let Ok(event) = event else { return };
        // `Some(true)`: the event completes a write of its (last) path.
        let completes = match event.kind {
            EventKind::Modify(ModifyKind::Metadata(_)) => return,
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(true),
            EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
            | EventKind::Remove(_) => Some(true),
            EventKind::Create(_) | EventKind::Modify(_) => Some(false),
            _ => None,
        };
        let Some(completes) = completes else { return };
        // A rename's destination is its last path.
        let Some(path) = event.paths.last() else {
            return;
        };
        if !is_relevant(path, layout) {
            return;
        }
        if completes {
            self.writing.remove(path);
        } else {
            self.writing.insert(path.clone());
        }
        for path in &event.paths {
            if is_relevant(path, layout) {
                self.paths.insert(path.clone());
            }
        }
    }

    fn quiet(&self) -> Duration {
        if self.writing.is_empty() {
            SETTLED_QUIET
        } else {
            QUIET
        }
    }
}

/// Whether a changed path can matter to the build: not under `target/`, not hidden, not an
/// editor's temporary file.
pub fn is_relevant(path: &Path, layout: &HotpatchDirs) -> bool {
    if path.components().any(|c| c.as_os_str() == "target") || path.starts_with(&layout.dir) {
        return false;
    }
    if path
        .strip_prefix(&layout.workspace_root)
        .unwrap_or(path)
        .components()
        .any(|c| is_hidden(Path::new(c.as_os_str())))
    {
        return false;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temporary = name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".tmp")
        || (name.starts_with('#') && name.ends_with('#'))
        || name == "4913";
    !temporary
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with('.'))
}

/// Files whose change needs a rebuild and restart whatever the patcher could do.
fn needs_restart(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name == "Cargo.toml" || name == "Cargo.lock" || name == "build.rs"
}

/// The app under watch and what has been patched into it.
struct Session {
    args: WatchArgs,
    layout: HotpatchDirs,
    /// The build the running app was made from; none while the app could not be built.
    base: Option<BaseRecord>,
    app: Option<Child>,
    /// The app's connection to this tool.
    link: AppLink,
    /// Library crates some applied patch rebuilt: patched again even when they return to the base.
    patched_crates: BTreeSet<String>,
    /// Content hash of every source file as last handled.
    seen: HashMap<PathBuf, String>,
    patches_built: u64,
    /// Compiling the base's libraries the way patches are, to compare the first patch with; a
    /// patch build waits for it, so it never compares with the differently compiled base build.
    baseline: Option<std::thread::JoinHandle<()>>,
    /// Compilers waiting for the next patch of the crates most likely to change.
    warm: WarmCompilers,
}

impl Session {
    /// Builds and starts the app; if the build fails, the first save tries again.
    fn start(args: WatchArgs, layout: HotpatchDirs) -> anyhow::Result<Self> {
        let link = AppLink::listen(&layout.dir)?;
        let layout_dir = layout.dir.clone();
        let mut session = Session {
            link,
            args,
            layout,
            seen: HashMap::new(),
            base: None,
            baseline: None,
            app: None,
            patched_crates: BTreeSet::new(),
            patches_built: 0,
            warm: WarmCompilers::new(&layout_dir.join("watch")),
        };
        session.restart("");
        Ok(session)
    }

    fn spawn(&mut self, executable: &Path) -> anyhow::Result<()> {
        let socket = self.layout.control_socket();
        status("Running", format!("`{}`", executable.display()));
        if let Some(base) = &self.base {
            self.link.expect_build(&base.identity.build_id);
        }
        let child =
            crate::app_link::app_command(executable, &self.args.run.app_args, &socket, &self.link)
                .spawn()
                .with_context(|| format!("running {}", executable.display()))?;
        self.app = Some(child);
        Ok(())
    }

    /// Between saves: notices the app exiting and, once the baseline is compiled, starts
    /// compilers for the first few libraries (which crate the first save changes is anyone's
    /// guess). Not before: they would compete with the baseline, which must read the sources
    /// before the first save changes them.
    fn when_idle(&mut self) {
        self.notice_exit();
        if self.baseline.as_ref().is_some_and(|b| b.is_finished()) {
            if let Some(baseline) = self.baseline.take() {
                let _ = baseline.join();
            }
            if let Some(base) = &self.base {
                for record in base
                    .crates
                    .iter()
                    .filter(|c| c.is_patchable_library())
                    .take(MAX_WAITING)
                {
                    self.warm.prepare(record);
                }
            }
        }
    }

    /// Reports an app that exited; the next save starts it again.
    fn notice_exit(&mut self) {
        let Some(app) = &mut self.app else { return };
        if let Ok(Some(exit)) = app.try_wait() {
            warning(format!(
                "the app exited ({exit}); save a file to build and start it again"
            ));
            self.app = None;
        }
    }

    fn handle(&mut self, paths: BTreeSet<PathBuf>, first_event: Instant) {
        self.patch_or_restart(paths, first_event);
        self.prepare_compilers();
    }

    /// Keeps a compiler waiting for each library crate patched or changed since the base.
    fn prepare_compilers(&mut self) {
        let Some(base) = &self.base else { return };
        for record in base.crates.iter().filter(|c| c.is_patchable_library()) {
            if self.patched_crates.contains(&record.name) || !record.changed_sources().is_empty() {
                self.warm.prepare(record);
            }
        }
    }

    fn patch_or_restart(&mut self, paths: BTreeSet<PathBuf>, first_event: Instant) {
        let changed: Vec<PathBuf> = paths
            .into_iter()
            .filter(|path| {
                let hash = std::fs::read(path)
                    .map(|b| sha256_hex(&b))
                    .unwrap_or_default();
                self.seen.insert(path.clone(), hash.clone()).as_deref() != Some(hash.as_str())
            })
            .collect();
        if changed.is_empty() {
            return;
        }
        self.notice_exit();
        let Some(base) = self.base.as_ref().filter(|_| self.app.is_some()) else {
            self.restart("the app is not running");
            return;
        };
        if let Some(path) = changed.iter().find(|p| needs_restart(p)) {
            self.unpatchable(&format!(
                "{} changed; a patch cannot change a manifest, the lock file or a build script",
                self.relative(path)
            ));
            return;
        }
        let debounce = first_event.elapsed();
        if let Some(baseline) = self.baseline.take() {
            let _ = baseline.join();
        }
        self.patches_built += 1;
        let output = self
            .layout
            .dir
            .join("watch")
            .join(format!("patch-{}.hotpatch", self.patches_built));
        let built = match patch::build_including(
            base,
            &self.layout.work_dir(),
            &output,
            &self.patched_crates,
            Some(&mut self.warm),
        ) {
            Ok(built) => built,
            Err(error) => {
                match error.downcast_ref::<NotPatchable>() {
                    Some(NotPatchable::NothingChanged) => {}
                    Some(NotPatchable::NeedsRestart(reason)) => {
                        let reason = reason.clone();
                        self.unpatchable(&reason.to_string());
                    }
                    None => error_line(format!(
                        "{error:#}; the app keeps running its last good code"
                    )),
                }
                return;
            }
        };
        let manifest = &built.file.manifest;
        let crates = manifest.crates.join(", ");
        let path = built.path.clone();
        let applied = Instant::now();
        let request = Request::Apply { path };
        let answer = self
            .link
            .request(&request)
            .unwrap_or_else(|| client::request(&self.layout.control_socket(), &request));
        match answer {
            Ok(Reply::Patch(report)) => {
                self.patched_crates.extend(manifest.crates.iter().cloned());
                let apply_time = applied.elapsed();
                let functions: Vec<String> = report
                    .changes
                    .iter()
                    .map(|change| format!("{} v{}", change.key, change.to))
                    .collect();
                status(
                    "Patched",
                    format!(
                        "{crates} in {:.0?} (debounce {:.0?}, rustc {:.0?}, checks {:.0?}, link {:.0?}, apply {:.0?})",
                        first_event.elapsed(),
                        debounce,
                        built.rustc,
                        built.analysis,
                        built.link,
                        apply_time
                    ),
                );
                for state in &report.states {
                    status(
                        "Migrated",
                        format!(
                            "{} v{} -> v{}: {} value(s)",
                            state.name, state.from, state.to, state.values
                        ),
                    );
                }
                let (hot, other) = machine_code::classify_changes(&manifest.changed_functions);
                if hot.is_empty() && other.is_empty() {
                    status("Unchanged", "no function's code changed");
                }
                if !hot.is_empty() {
                    status("Changed", format!("{} (hot: running now)", listed(&hot)));
                }
                if !other.is_empty() {
                    status(
                        "Changed",
                        format!(
                            "{} (not hot: runs where patched code calls it)",
                            listed(&other)
                        ),
                    );
                }
                tracing_versions(&functions);
            }
            Ok(_) => error_line("the app answered the patch with an unexpected reply"),
            Err(error) => error_line(format!(
                "{error:#}; the app keeps running its last good code"
            )),
        }
    }

    /// Explains a change that cannot be patched, then rebuilds and restarts unless told not to.
    fn unpatchable(&mut self, reason: &str) {
        if self.args.no_restart {
            warning(format!("{reason}; not restarting (--no-restart)"));
        } else {
            warning(format!("{reason}; rebuilding and restarting the app"));
            self.restart("");
        }
    }

    fn restart(&mut self, why: &str) {
        if !why.is_empty() {
            status("Restarting", why);
        }
        self.stop_app();
        match host::build(&self.args.run.selection, &self.layout) {
            Ok((base, executable)) => {
                self.seen = seen_from(&base);
                self.baseline = Some(remember_in_background(&base, &self.layout));
                // Started once the baseline is compiled (see `when_idle`).
                self.warm.clear();
                self.base = Some(base);
                self.patched_crates.clear();
                if let Err(error) = self.spawn(&executable) {
                    error_line(format!("{error:#}"));
                }
            }
            Err(error) => {
                self.base = None;
                error_line(format!("{error:#}; fix it and save again to start the app"));
            }
        }
    }

    fn stop_app(&mut self) {
        if let Some(mut app) = self.app.take() {
            // SAFETY: `kill` with a pid we own and SIGTERM has no memory effects.
            unsafe { libc::kill(app.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = app.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = app.kill();
            let _ = app.wait();
        }
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.layout.workspace_root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop_app();
    }
}

/// The table versions now running, for `--verbose`-style inspection in logs.
fn tracing_versions(functions: &[String]) {
    if std::env::var_os("HOTPATCH_VERBOSE").is_some() {
        status("Versions", functions.join(", "));
    }
}

/// Compiles the base's libraries the way patches are, off the main thread, so the first save's
/// list of changed functions is exact.
fn remember_in_background(base: &BaseRecord, layout: &HotpatchDirs) -> std::thread::JoinHandle<()> {
    let base = base.clone();
    let work_dir = layout.work_dir();
    std::thread::spawn(move || {
        if let Err(error) = patch::remember_base_functions(&base, &work_dir) {
            warning(format!(
                "could not record the base build's functions: {error:#}"
            ));
        }
    })
}

/// The content hash of every file the base build read: sources, manifests, the lock file.
fn seen_from(base: &BaseRecord) -> HashMap<PathBuf, String> {
    let mut seen: HashMap<PathBuf, String> = base
        .crates
        .iter()
        .flat_map(|c| c.sources.iter())
        .map(|(path, hash)| (path.clone(), hash.clone()))
        .collect();
    let manifests = base
        .crates
        .iter()
        .filter_map(|c| c.invocation.env.get("CARGO_MANIFEST_DIR"))
        .map(|dir| Path::new(dir).join("Cargo.toml"));
    let root = [
        base.workspace_root.join("Cargo.toml"),
        base.workspace_root.join("Cargo.lock"),
    ];
    for path in manifests.chain(root) {
        if let Ok(bytes) = std::fs::read(&path) {
            seen.insert(path, sha256_hex(&bytes));
        }
    }
    seen
}

/// Names for one status line: the first few, then how many more (derived code such as serde's
/// can change dozens of functions at once).
fn listed(names: &[String]) -> String {
    const SHOWN: usize = 8;
    if names.len() <= SHOWN {
        return names.join(", ");
    }
    format!(
        "{} and {} more",
        names[..SHOWN].join(", "),
        names.len() - SHOWN
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RenameMode};

    fn layout() -> HotpatchDirs {
        HotpatchDirs {
            workspace_root: PathBuf::from("/ws"),
            dir: PathBuf::from("/ws/target/hotpatch/dev"),
            profile: "dev",
        }
    }

    fn event(kind: EventKind, paths: &[&str]) -> notify::Result<notify::Event> {
        let mut event = notify::Event::new(kind);
        for path in paths {
            event = event.add_path(PathBuf::from(path));
        }
        Ok(event)
    }

    #[test]
    fn a_burst_settles_once_each_file_written_is_closed_or_renamed_into_place() {
        let layout = layout();
        let mut burst = Burst::default();
        burst.add(
            event(
                EventKind::Modify(ModifyKind::Data(DataChange::Any)),
                &["/ws/a/src/lib.rs"],
            ),
            &layout,
        );
        burst.add(
            event(
                EventKind::Create(CreateKind::File),
                &["/ws/b/src/lib.rs.tmp~"],
            ),
            &layout,
        );
        assert_eq!(burst.quiet(), QUIET, "lib.rs is still being written");
        burst.add(
            event(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                &["/ws/a/src/lib.rs"],
            ),
            &layout,
        );
        assert_eq!(burst.quiet(), SETTLED_QUIET);
        // An editor renaming the file away first (a backup), then writing a new one in place.
        burst.add(
            event(
                EventKind::Modify(ModifyKind::Name(RenameMode::From)),
                &["/ws/b/src/main.rs"],
            ),
            &layout,
        );
        assert_eq!(burst.quiet(), QUIET);
        burst.add(
            event(
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                &["/ws/b/src/.main.rs.swp", "/ws/b/src/main.rs"],
            ),
            &layout,
        );
        assert_eq!(burst.quiet(), SETTLED_QUIET);
        // Metadata changes and reads are not changes; target/ and hidden files are not sources.
        burst.add(
            event(
                EventKind::Modify(ModifyKind::Metadata(notify::event::MetadataKind::Any)),
                &["/ws/c.rs"],
            ),
            &layout,
        );
        burst.add(
            event(
                EventKind::Modify(ModifyKind::Data(DataChange::Any)),
                &["/ws/target/debug/x.rs"],
            ),
            &layout,
        );
        burst.add(
            event(
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                &["/ws/d.rs"],
            ),
            &layout,
        );
        assert_eq!(burst.quiet(), SETTLED_QUIET);
        let paths: Vec<&str> = burst.paths.iter().filter_map(|p| p.to_str()).collect();
        assert_eq!(paths, ["/ws/a/src/lib.rs", "/ws/b/src/main.rs"]);
    }

    #[test]
    fn long_lists_are_cut_with_a_count() {
        let names: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
        assert_eq!(listed(&names[..2]), "f0, f1");
        assert_eq!(listed(&names), "f0, f1, f2, f3, f4, f5, f6, f7 and 3 more");
    }
}
