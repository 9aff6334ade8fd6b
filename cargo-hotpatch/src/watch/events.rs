//! What `watch` watches and when a save is complete: the directories of the workspace, and bursts
//! of file events coalesced into one set of changed paths.
//!
//! Metadata and access events are dropped, and so is every path that is not a build input: only
//! the files rustc read for a crate (its dep-info lists them: sources, `include_str!` files),
//! Rust sources (a new module), manifests, the lock file and build scripts count; a log, a save
//! or a database the app writes inside its workspace neither starts nor prolongs a burst.
//! `target/`, hidden files and editors' temporary files never count. A burst ends once the tree
//! is quiet: briefly once every file written was closed or renamed into place, longer while one
//! may still be being written.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cargo_metadata::MetadataCommand;
use notify::{EventKind, RecursiveMode};

use crate::cli::WatchArgs;
use crate::host::HotpatchDirs;

/// How long the tree must stay quiet before a burst of events is handled while a file of it may
/// still be being written.
const QUIET: Duration = Duration::from_millis(15);
/// How long it must stay quiet once every file of the burst was closed after writing or renamed
/// into place: the save is complete, and the wait only joins files saved back to back.
const SETTLED_QUIET: Duration = Duration::from_millis(3);
/// The longest a burst is allowed to postpone handling.
const MAX_BURST: Duration = Duration::from_millis(500);

/// The directories to watch: every workspace member, recursively, except the target directory,
/// plus the workspace root itself for its manifest and lock file.
pub fn watch_roots(
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

/// Waits for the next burst of relevant events: its paths and when its first event came.
/// `None` after a fifth of a second without one, for the session's work between saves.
pub fn next_burst(
    events: &Receiver<notify::Result<notify::Event>>,
    is_input: &dyn Fn(&Path) -> bool,
) -> anyhow::Result<Option<(BTreeSet<PathBuf>, Instant)>> {
    let mut burst = Burst::default();
    let first = loop {
        match events.recv_timeout(Duration::from_millis(200)) {
            Ok(event) => {
                burst.add(event, is_input);
                if !burst.paths.is_empty() {
                    break Instant::now();
                }
            }
            Err(RecvTimeoutError::Timeout) => return Ok(None),
            Err(RecvTimeoutError::Disconnected) => anyhow::bail!("the file watcher stopped"),
        }
    };
    while first.elapsed() < MAX_BURST {
        match events.recv_timeout(burst.quiet()) {
            Ok(event) => burst.add(event, is_input),
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
    fn add(&mut self, event: notify::Result<notify::Event>, is_input: &dyn Fn(&Path) -> bool) {
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
        if !is_input(path) {
            return;
        }
        if completes {
            self.writing.remove(path);
        } else {
            self.writing.insert(path.clone());
        }
        for path in &event.paths {
            if is_input(path) {
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

/// Whether a changed path is a build input: one the last build read (`known`), a Rust source, a
/// manifest, the lock file or a build script; never under `target/`, hidden or an editor's
/// temporary file.
pub fn is_input(path: &Path, layout: &HotpatchDirs, known: &HashMap<PathBuf, String>) -> bool {
    if !is_relevant(path, layout) {
        return false;
    }
    known.contains_key(path)
        || needs_restart(path)
        || path.extension().is_some_and(|ext| ext == "rs")
}

/// Whether a changed path can matter to the build: not under `target/`, not hidden, not an
/// editor's temporary file.
fn is_relevant(path: &Path, layout: &HotpatchDirs) -> bool {
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
pub fn needs_restart(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name == "Cargo.toml" || name == "Cargo.lock" || name == "build.rs"
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
    fn only_build_inputs_count() {
        let layout = layout();
        let known: HashMap<PathBuf, String> =
            [(PathBuf::from("/ws/a/assets/banner.txt"), String::new())].into();
        let input = |path: &str| is_input(Path::new(path), &layout, &known);
        // Read by the last build (`include_str!`), a new module, manifests, a build script.
        assert!(input("/ws/a/assets/banner.txt"));
        assert!(input("/ws/a/src/new_module.rs"));
        assert!(input("/ws/Cargo.lock"));
        assert!(input("/ws/a/Cargo.toml"));
        assert!(input("/ws/a/build.rs"));
        // What an app writes in its workspace.
        assert!(!input("/ws/app.log"));
        assert!(!input("/ws/a/saves/slot1.json"));
        assert!(!input("/ws/data.db"));
        assert!(!input("/ws/a/assets/other.txt"));
        assert!(!input("/ws/target/debug/build/x/out/gen.rs"));
    }

    #[test]
    fn a_burst_settles_once_each_file_written_is_closed_or_renamed_into_place() {
        let layout = layout();
        let known = HashMap::new();
        let input = |path: &Path| is_input(path, &layout, &known);
        let mut burst = Burst::default();
        burst.add(
            event(
                EventKind::Modify(ModifyKind::Data(DataChange::Any)),
                &["/ws/a/src/lib.rs"],
            ),
            &input,
        );
        burst.add(
            event(
                EventKind::Create(CreateKind::File),
                &["/ws/b/src/lib.rs.tmp~"],
            ),
            &input,
        );
        assert_eq!(burst.quiet(), QUIET, "lib.rs is still being written");
        burst.add(
            event(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                &["/ws/a/src/lib.rs"],
            ),
            &input,
        );
        assert_eq!(burst.quiet(), SETTLED_QUIET);
        // An editor renaming the file away first (a backup), then writing a new one in place.
        burst.add(
            event(
                EventKind::Modify(ModifyKind::Name(RenameMode::From)),
                &["/ws/b/src/main.rs"],
            ),
            &input,
        );
        assert_eq!(burst.quiet(), QUIET);
        burst.add(
            event(
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                &["/ws/b/src/.main.rs.swp", "/ws/b/src/main.rs"],
            ),
            &input,
        );
        assert_eq!(burst.quiet(), SETTLED_QUIET);
        // Metadata changes and reads are not changes; target/ and hidden files are not sources.
        burst.add(
            event(
                EventKind::Modify(ModifyKind::Metadata(notify::event::MetadataKind::Any)),
                &["/ws/c.rs"],
            ),
            &input,
        );
        burst.add(
            event(
                EventKind::Modify(ModifyKind::Data(DataChange::Any)),
                &["/ws/target/debug/x.rs"],
            ),
            &input,
        );
        burst.add(
            event(
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                &["/ws/d.rs"],
            ),
            &input,
        );
        assert_eq!(burst.quiet(), SETTLED_QUIET);
        let paths: Vec<&str> = burst.paths.iter().filter_map(|p| p.to_str()).collect();
        assert_eq!(paths, ["/ws/a/src/lib.rs", "/ws/b/src/main.rs"]);
    }
}
