//! One turn of `watch` after a save: find what really changed, build a patch of it, apply it to
//! the app and say what changed; or explain why it cannot be patched and restart the app.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hotreload_runtime::wire::patch_file::{sha256_hex, Manifest};
use hotreload_runtime::wire::protocol::PatchReport;

use super::events::needs_restart;
use super::session::Session;
use crate::patch::changes::machine_code;
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
            self.restart("the app is not running");
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
        let Some(built) = self.build_patch() else {
            return;
        };
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
                report_patched(&built, &report, &timings, self.verbose);
            }
            Err(error) => error_line(format!(
                "{error:#}; the app keeps running its last good code"
            )),
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

    /// Builds the next patch against the running app's base. `None` if nothing changed, if the
    /// change cannot be patched (then the app is restarted) or if the build failed (said).
    fn build_patch(&mut self) -> Option<BuiltPatch> {
        if let Some(baseline) = self.baseline.take() {
            let _ = baseline.join();
        }
        self.patches_built += 1;
        let output = self
            .layout
            .dir
            .join("watch")
            .join(format!("patch-{}.hotpatch", self.patches_built));
        let base = self.base.as_ref()?;
        let error = match patch::build_including(
            base,
            &self.layout.work_dir(),
            &output,
            &self.patched_crates,
            Some(&mut self.warm),
        ) {
            Ok(built) => return Some(built),
            Err(error) => error,
        };
        match error.downcast_ref::<NotPatchable>() {
            Some(NotPatchable::NothingChanged) => {}
            Some(NotPatchable::NeedsRestart(reason)) => {
                let reason = reason.to_string();
                self.unpatchable(&reason);
            }
            None => error_line(format!(
                "{error:#}; the app keeps running its last good code"
            )),
        }
        None
    }

    /// Applies a patch through the app's connection to this tool, or its control socket if the
    /// app has not connected.
    fn apply(&self, patch: &Path) -> anyhow::Result<PatchReport> {
        self.link
            .apply(patch)
            .unwrap_or_else(|| client::apply_allowing(&self.layout.control_socket(), patch, true))
    }
}

/// Says what a patch changed in the app, and what each part of it took.
fn report_patched(built: &BuiltPatch, report: &PatchReport, timings: &Timings, verbose: bool) {
    let manifest = &built.file.manifest;
    status(
        "Patched",
        format!(
            // One decimal: a split in whole seconds (`rustc 6s`) says too little to work on.
            "{} in {:.1?} (debounce {:.1?}, rustc {:.1?}, checks {:.1?}, link {:.1?}, apply {:.1?})",
            manifest.crates.join(", "),
            timings.first_event.elapsed(),
            timings.debounce,
            built.rustc,
            built.analysis,
            built.link,
            timings.apply
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
    if hot.is_empty() && redirected.is_empty() && new.is_empty() {
        status("Unchanged", "no function's code changed");
    }
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
    fn long_lists_are_cut_with_a_count() {
        let names: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
        assert_eq!(listed(&names[..2]), "f0, f1");
        assert_eq!(listed(&names), "f0, f1, f2, f3, f4, f5, f6, f7 and 3 more");
    }
}
