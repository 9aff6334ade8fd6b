//! One turn of `watch` after a save: find what really changed, build a patch of it, apply it to
//! the app and say what changed; or explain why it cannot be patched and restart the app.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hotreload_runtime::wire::patch_file::{sha256_hex, Manifest};
use hotreload_runtime::wire::protocol::PatchReport;

use super::events::needs_restart;
use super::running;
use super::session::Session;
use crate::human;
use crate::patch::changes::machine_code;
use crate::patch::compile::CompileFailed;
use crate::patch::{self, BuiltPatch, NotPatchable};
use crate::remote::client;
use crate::shell::{error_line, status};

/// How long each part of one patch took, for its status line.
struct Timings {
    /// From the first event of the save.
    first_event: Instant,
    /// From the first event until the save was complete.
    debounce: Duration,
    /// Sending the patch and the app committing it.
    apply: Duration,
}

impl Session {
    /// Patches the app with what the saved `paths` changed, or restarts it if that cannot be
    /// patched. A save that changes no file's content does nothing.
    pub(super) fn patch_or_restart(&mut self, paths: BTreeSet<PathBuf>, first_event: Instant) {
        let changed = self.changed_contents(paths);
        if changed.is_empty() {
            return;
        }
        self.notice_exit();
        if self.base.is_none() || self.app.is_none() {
            let why = if self.base.is_none() {
                "its last build failed"
            } else {
                "it had exited"
            };
            status("Starting", format!("the app again ({why})"));
            self.restart();
            return;
        }
        if let Some(path) = changed.iter().find(|p| needs_restart(p)) {
            self.unpatchable(&format!(
                "{} changed; a patch cannot change a manifest, the lock file or a build script",
                self.relative(path)
            ));
            return;
        }
        let debounce = first_event.elapsed();
        // A rollback since the last look (a panic's, or one from elsewhere) changes what the
        // patch compares with.
        self.report_panics();
        self.look_at_the_app();
        let Some((built, before)) = self.build_patch() else {
            return;
        };
        if !changes_anything(&built) {
            // This save's edit already runs (an earlier build of a burst took it, or it changed
            // no code): nothing to apply or say. What runs stays what the next build compares
            // with (this build may lack functions that run, as one of a file half written does).
            running::restore(&before);
            if self.verbose {
                status("Unchanged", "this save changes no code the app runs");
            }
            return;
        }
        let applied = Instant::now();
        match self.apply(&built.path) {
            Ok(report) => {
                let crates = built.file.manifest.crates.iter().cloned();
                self.patched_crates.extend(crates);
                let timings = Timings {
                    first_event,
                    debounce,
                    apply: applied.elapsed(),
                };
                let before = &self.redirected_entries;
                report_patched(&built, &report, &timings, before, self.verbose);
                self.redirected_entries = redirected_names(&built.file.manifest);
                self.after_apply(&built);
            }
            Err(error) => {
                // The next patch compares with what runs, not with this refused build.
                running::restore(&before);
                error_line(format!(
                    "{error:#}; the app keeps running its last good code"
                ));
            }
        }
    }

    /// Remembers the functions of the patch now active, and the app's newest update.
    fn after_apply(&mut self, built: &BuiltPatch) {
        let Some(base) = &self.base else { return };
        let snapshot = running::snapshot(base, &self.layout.work_dir());
        let report = self.link.status().and_then(Result::ok);
        self.running.applied(&built.file.id, snapshot, report);
    }

    /// Asks the app what it runs, and takes note of changes made from outside `watch`.
    pub(super) fn look_at_the_app(&mut self) {
        if self.app.is_none() {
            return;
        }
        if let Some(Ok(report)) = self.link.status() {
            self.running.notice(&report);
        }
    }

    /// The paths whose content differs from when they were last handled; remembers it.
    fn changed_contents(&mut self, paths: BTreeSet<PathBuf>) -> Vec<PathBuf> {
        paths
            .into_iter()
            .filter(|path| {
                let hash = std::fs::read(path)
                    .map(|b| sha256_hex(&b))
                    .unwrap_or_default();
                self.seen.insert(path.clone(), hash.clone()).as_deref() != Some(hash.as_str())
            })
            .collect()
    }

    /// Waits for the compile that starts with the app (see `prepare_in_background`), saying so
    /// when a save comes before it ends: on a large crate it takes as long as a first build.
    fn wait_for_baseline(&mut self) {
        let Some(baseline) = self.baseline.take() else {
            return;
        };
        if baseline.is_finished() {
            let _ = baseline.join();
            return;
        }
        status(
            "Waiting",
            "for the compile of the app's crates that started with it (once per start): the first patch compares with it",
        );
        let started = Instant::now();
        let _ = baseline.join();
        status(
            "Compiled",
            format!("the app's crates in {}", human::duration(started.elapsed())),
        );
    }

    /// Builds the next patch against the running app's base, with the remembered functions as
    /// they were before it (to put back if the app refuses it). `None` if nothing changed, if
    /// the change cannot be patched (then the app is restarted) or if the build failed (said).
    fn build_patch(&mut self) -> Option<(BuiltPatch, running::Snapshot)> {
        self.wait_for_baseline();
        self.patches_built += 1;
        let output = self
            .layout
            .dir
            .join("watch")
            .join(format!("patch-{}.hotpatch", self.patches_built));
        let base = self.base.as_ref()?;
        let work_dir = self.layout.work_dir();
        self.running.remember_base(base, &work_dir);
        let before = running::snapshot(base, &work_dir);
        let error = match patch::build_including(
            base,
            &work_dir,
            &output,
            &self.patched_crates,
            Some(&mut self.warm),
        ) {
            Ok(built) => {
                self.waiting_for_manifest = None;
                return Some((built, before));
            }
            Err(error) => error,
        };
        running::restore(&before);
        match error.downcast_ref::<NotPatchable>() {
            Some(NotPatchable::NothingChanged) => {}
            Some(NotPatchable::NeedsRestart(reason)) => {
                let reason = reason.to_string();
                self.unpatchable(&reason);
            }
            None => self.build_failed(&error),
        }
        None
    }

    /// Says why a patch build failed: rustc's errors, or once, quietly, that the code uses a
    /// crate no manifest lists yet (the manifest's save rebuilds the app).
    fn build_failed(&mut self, error: &anyhow::Error) {
        let Some(failed) = error.downcast_ref::<CompileFailed>() else {
            self.waiting_for_manifest = None;
            error_line(format!(
                "{error:#}; the app keeps running its last good code"
            ));
            return;
        };
        let missing = unlinked_crates(&failed.diagnostics);
        if missing.is_empty() {
            self.waiting_for_manifest = None;
            eprint!("{}", failed.diagnostics);
            error_line(format!(
                "could not compile `{}`; the app keeps running its last good code",
                failed.crate_name
            ));
            return;
        }
        if self.waiting_for_manifest.as_ref() != Some(&missing) {
            status(
                "Waiting",
                format!(
                    "for `{}` in a Cargo.toml: the code uses a crate no manifest lists yet; save the manifest to rebuild (the app keeps its last good code)",
                    missing.iter().cloned().collect::<Vec<_>>().join("`, `")
                ),
            );
        }
        self.waiting_for_manifest = Some(missing);
    }

    /// Applies a patch through the app's connection to this tool, or its control socket if the
    /// app has not connected.
    fn apply(&self, patch: &Path) -> anyhow::Result<PatchReport> {
        self.link
            .apply(patch)
            .unwrap_or_else(|| client::apply_allowing(&self.layout.control_socket(), patch, true))
    }
}

/// Whether a patch changes any code or state the app runs.
fn changes_anything(built: &BuiltPatch) -> bool {
    let manifest = &built.file.manifest;
    let (hot, other) = machine_code::classify_changes(&manifest.changed_functions);
    !(hot.is_empty() && other.is_empty() && manifest.states.is_empty())
}

/// The crates rustc's errors say are used but not linked (`use of unresolved module or unlinked
/// crate `rand``, `use `cargo add rand``).
fn unlinked_crates(errors: &str) -> BTreeSet<String> {
    let errors = without_colours(errors);
    let errors = errors.as_str();
    let mut crates = BTreeSet::new();
    for marker in ["unlinked crate `", "use `cargo add "] {
        for (at, _) in errors.match_indices(marker) {
            let rest = &errors[at + marker.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            if !name.is_empty() {
                crates.insert(name);
            }
        }
    }
    crates
}

/// `text` without terminal colour codes (`ESC [ ... m`).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Says what a patch changed in the app, and what each part of it took.
fn report_patched(
    built: &BuiltPatch,
    report: &PatchReport,
    timings: &Timings,
    redirected_before: &BTreeSet<String>,
    verbose: bool,
) {
    let manifest = &built.file.manifest;
    status(
        "Patched",
        format!(
            "{} in {} (debounce {}, rustc {}, checks {}, link {}, apply {})",
            manifest.crates.join(", "),
            human::duration(timings.first_event.elapsed()),
            human::duration(timings.debounce),
            human::duration(built.rustc),
            human::duration(built.analysis),
            human::duration(built.link),
            human::duration(timings.apply)
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
    let (hot, redirected, new) = running_now(manifest);
    if !hot.is_empty() {
        status("Changed", format!("{} (hot: running now)", listed(&hot)));
    }
    if !redirected.is_empty() {
        let entries = listed(&redirected);
        status(
            "Changed",
            format!("{entries} (entry redirected: running now)"),
        );
    }
    // Redirected by the last patch and not by this one: its entry got its own bytes back.
    let (restored, new): (Vec<String>, Vec<String>) = new
        .into_iter()
        .partition(|name| redirected_before.contains(name));
    if !restored.is_empty() {
        let entries = listed(&restored);
        status(
            "Changed",
            format!("{entries} (back to its own code: running now)"),
        );
    }
    if !new.is_empty() {
        status(
            "Changed",
            format!(
                "{} (new or inlined: runs where changed code calls it)",
                listed(&new)
            ),
        );
    }
    if verbose {
        // The table versions now running.
        let functions: Vec<String> = report
            .changes
            .iter()
            .map(|change| format!("{} v{}", change.key, change.to))
            .collect();
        status("Versions", functions.join(", "));
    }
}

/// The functions a patch changed: hot ones (their slots switch them), those whose entries it
/// redirects, and the others: new functions, and those the running program has no entry of
/// (inlined into their callers, which are redirected). The first two run at every later call.
fn running_now(manifest: &Manifest) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (hot, other) = machine_code::classify_changes(&manifest.changed_functions);
    let redirected: BTreeSet<&str> = manifest
        .entry_redirects
        .iter()
        .map(|redirect| redirect.name.as_str())
        .collect();
    let (entries, new) = other
        .into_iter()
        .partition(|name| redirected.contains(name.as_str()));
    (hot, entries, new)
}

/// The functions whose entries `manifest` redirects.
fn redirected_names(manifest: &Manifest) -> BTreeSet<String> {
    let names = manifest.entry_redirects.iter();
    names.map(|redirect| redirect.name.clone()).collect()
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

    #[test]
    fn crates_missing_from_the_manifest_are_read_from_rustcs_errors() {
        let errors =
            "error[E0433]: failed to resolve: use of unresolved module or unlinked crate `rand`\n\
            help: if you wanted to use a crate named `rand`, use `cargo add rand` to add it\n\
            error[E0432]: unresolved import `serde_yaml`\n\
            help: use `cargo add serde_yaml` to add it to your `Cargo.toml`";
        let crates: Vec<String> = unlinked_crates(errors).into_iter().collect();
        assert_eq!(crates, ["rand", "serde_yaml"]);
        assert!(unlinked_crates("error: expected one of `,`").is_empty());
        let coloured: Vec<String> = unlinked_crates("unlinked crate `\x1b[1mrand\x1b[0m`")
            .into_iter()
            .collect();
        assert_eq!(coloured, ["rand"]);
    }

    #[test]
    fn long_lists_are_cut_with_a_count() {
        let names: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
        assert_eq!(listed(&names[..2]), "f0, f1");
        assert_eq!(listed(&names), "f0, f1, f2, f3, f4, f5, f6, f7 and 3 more");
    }
}
