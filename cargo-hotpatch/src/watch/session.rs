//! The app under `watch`: building and starting it, noticing it exit, restarting it when a change
//! cannot be patched, and what has been patched into it since it started.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hotreload_runtime::wire::patch_file::sha256_hex;

use super::interrupt;
use super::running::Running;
use crate::cli::WatchArgs;
use crate::host::BaseRecord;
use crate::host::{self, HotpatchDirs};
use crate::patch;
use crate::patch::compile::warm::{WarmCompilers, MAX_WAITING};
use crate::remote::app_link::{app_command, AppLink};
use crate::shell::{error_line, warning};

/// The app under watch and what has been patched into it.
pub(super) struct Session {
    pub(super) args: WatchArgs,
    pub(super) layout: HotpatchDirs,
    /// The build the running app was made from; none while the app could not be built.
    pub(super) base: Option<BaseRecord>,
    pub(super) app: Option<Child>,
    /// The app's connection to this tool.
    pub(super) link: AppLink,
    /// Library crates some applied patch rebuilt: patched again even when they return to the base.
    pub(super) patched_crates: BTreeSet<String>,
    /// The functions whose entries the last applied patch redirects: one the next patch leaves
    /// out is given back its own code.
    pub(super) redirected_entries: BTreeSet<String>,
    /// Content hash of every source file as last handled.
    pub(super) seen: HashMap<PathBuf, String>,
    pub(super) patches_built: u64,
    /// Compiling the base's libraries the way patches are, to compare the first patch with; a
    /// patch build waits for it, so it never compares with the differently compiled base build.
    pub(super) baseline: Option<std::thread::JoinHandle<()>>,
    /// Compilers waiting for the next patch of the crates most likely to change.
    pub(super) warm: WarmCompilers,
    /// `--verbose`: also list the versions now running after each patch.
    pub(super) verbose: bool,
    /// What the app runs now, and the functions of each patch applied to it.
    pub(super) running: Running,
    /// The crates the code uses that no manifest lists yet, once said.
    pub(super) waiting_for_manifest: Option<BTreeSet<String>>,
    /// The last panic in patched code shown.
    pub(super) panics_seen: PanicsSeen,
}

/// The last panic in patched code shown (see `panics.rs`), per app process.
#[derive(Default)]
pub(super) struct PanicsSeen {
    pub(super) pid: Option<u32>,
    pub(super) last: u64,
}

impl Session {
    /// Builds and starts the app; if the build fails, the first save tries again.
    pub(super) fn start(
        args: WatchArgs,
        layout: HotpatchDirs,
        verbose: bool,
    ) -> anyhow::Result<Self> {
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
            redirected_entries: BTreeSet::new(),
            patches_built: 0,
            warm: WarmCompilers::new(&layout_dir.join("watch")),
            verbose,
            running: Running::default(),
            waiting_for_manifest: None,
            panics_seen: Default::default(),
        };
        session.restart();
        Ok(session)
    }

    fn spawn(&mut self, executable: &Path) -> anyhow::Result<()> {
        let socket = self.layout.control_socket();
        crate::shell::running(executable, &socket);
        if let Some(base) = &self.base {
            self.link.expect_build(&base.identity.build_id);
        }
        let child = app_command(executable, &self.args.run.app_args, &socket, &self.link)
            .spawn()
            .with_context(|| format!("running {}", executable.display()))?;
        interrupt::set_app(child.id());
        self.app = Some(child);
        Ok(())
    }

    /// Between saves: notices the app exiting and, once the baseline is compiled, starts
    /// compilers for the first few libraries (which crate the first save changes is anyone's
    /// guess). Not before: they would compete with the baseline, which must read the sources
    /// before the first save changes them.
    pub(super) fn when_idle(&mut self) {
        self.notice_exit();
        self.report_panics();
        if self.running.poll_due() {
            self.look_at_the_app();
        }
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
    pub(super) fn notice_exit(&mut self) {
        let Some(app) = &mut self.app else { return };
        if let Ok(Some(exit)) = app.try_wait() {
            warning(format!(
                "the app exited ({exit}); save a file to build and start it again"
            ));
            self.app = None;
            interrupt::set_app(0);
        }
    }

    pub(super) fn handle(&mut self, paths: BTreeSet<PathBuf>, first_event: Instant) {
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

    /// Explains a change that cannot be patched, then rebuilds and restarts unless told not to.
    pub(super) fn unpatchable(&mut self, reason: &str) {
        if self.args.no_restart {
            warning(format!("{reason}; not restarting (--no-restart)"));
        } else {
            warning(format!("{reason}; rebuilding and restarting the app"));
            self.restart();
        }
    }

    /// Builds the app and starts it, stopping the running one first.
    pub(super) fn restart(&mut self) {
        self.stop_app();
        match host::build(&self.args.run.selection, &self.layout) {
            Ok((base, executable)) => {
                self.seen = seen_from(&base);
                // The app about to start has loaded no patch.
                if let Err(error) = patch::forget_introduced_statics(&base, &self.layout.work_dir())
                {
                    warning(format!("{error:#}"));
                }
                self.baseline = Some(prepare_in_background(&base, &self.layout));
                // Started once the baseline is compiled (see `when_idle`).
                self.warm.clear();
                self.base = Some(base);
                self.patched_crates.clear();
                self.redirected_entries.clear();
                self.running.reset();
                self.waiting_for_manifest = None;
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
        interrupt::set_app(0);
        if let Some(mut app) = self.app.take() {
            // SAFETY: `kill` with a pid we own and SIGTERM has no memory effects.
            unsafe { libc::kill(app.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + interrupt::APP_EXIT;
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

    pub(super) fn relative(&self, path: &Path) -> String {
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

/// Compiles the base's libraries the way patches are and reads ahead what the first patch reads,
/// off the main thread, so the first save's list of changed functions is exact and it patches as
/// fast as the next.
fn prepare_in_background(base: &BaseRecord, layout: &HotpatchDirs) -> std::thread::JoinHandle<()> {
    let base = base.clone();
    let work_dir = layout.work_dir();
    std::thread::spawn(move || {
        if let Err(error) = patch::prepare_first_patch(&base, &work_dir) {
            warning(format!(
                "could not prepare the first patch (the base's crates compiled the way patches are): {error:#}; saves still patch, the first compared with the base build"
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
