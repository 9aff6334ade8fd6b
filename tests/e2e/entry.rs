//! End to end: entry redirection (issue 14) on `tests/fixtures/entry`, a workspace with no
//! `#[hot]` anywhere. Its busy thread never reaches a safe point and calls a plain library
//! function (`shapes::label`), a helper of the binary (`entryapp::helper`) and, through the
//! library, a small leaf function of a third crate (`leaf::bump`, inlined into `shapes::measure`
//! in release). Each edit's patch must redirect exactly the functions whose machine code changed,
//! each found at its entry in the running executable and in the patch library; applied, the busy
//! thread runs the new code at once, and a rollback restores the base's. A changed `main` and a
//! signature change with a caller the patch does not replace are refused.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::Instant;

use hotreload_runtime::wire::patch_file::EntryRedirect;
use hotreload_tests::{locations, read_lines, wait_for_text, Fixture, PatchFile, Profile, ToolRun};
use object::{Object as _, ObjectSymbol as _};

/// The fixture's markers in the base: what its lines print until a patch changes them.
const BASE: Markers = Markers {
    lib: 1,
    helper: 10,
    leaf: 100,
};

/// The three version markers an app line prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Markers {
    lib: u64,
    helper: u64,
    leaf: u64,
}

/// `cargo hotpatch run` of the entry fixture, with its lines.
struct EntryApp {
    run: ToolRun,
    lines: Receiver<String>,
}

impl EntryApp {
    fn start(fixture: &Fixture) -> Self {
        Self::start_with(fixture, "run")
    }

    /// `cargo hotpatch COMMAND` (`run` or `watch`) of the fixture.
    fn start_with(fixture: &Fixture, command: &str) -> Self {
        let (run, stdout) = ToolRun::start(fixture, command, &[]);
        let mut app = EntryApp {
            run,
            lines: read_lines(stdout),
        };
        let deadline = Instant::now() + fixture.profile().first_build();
        let first = app.next_markers(deadline);
        app.run.adopt_app();
        assert_eq!(first, BASE, "the base runs the base's code");
        app
    }

    /// The markers of the next line whose busy thread has run at least one round.
    fn next_markers(&mut self, deadline: Instant) -> Markers {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no line from the entry app in time; the tool said:\n{}",
                    self.run.stderr_tail()
                )
            });
            let field = |name: &str| -> u64 {
                line.split(' ')
                    .find_map(|part| part.strip_prefix(&format!("{name}=")))
                    .and_then(|value| value.parse().ok())
                    .unwrap_or_else(|| panic!("no {name}= in the app's line `{line}`"))
            };
            if field("rounds") > 0 {
                return Markers {
                    lib: field("lib"),
                    helper: field("helper"),
                    leaf: field("leaf"),
                };
            }
        }
    }

    /// Waits until the app's lines show `expected`, then asserts they keep showing it.
    fn wait_for(&mut self, expected: Markers, context: &str) {
        let deadline = Instant::now() + hotreload_tests::NEW_VERSION;
        let mut last = None;
        while Instant::now() < deadline {
            let markers = self.next_markers(deadline);
            if markers == expected {
                return self.expect(expected, context);
            }
            last = Some(markers);
        }
        panic!("{context}: the app never showed {expected:?}; last {last:?}");
    }

    /// Asserts the app still runs `expected`, a few lines on.
    fn expect(&mut self, expected: Markers, context: &str) {
        let deadline = Instant::now() + hotreload_tests::MORE_TICKS;
        for _ in 0..3 {
            let markers = self.next_markers(deadline);
            assert_eq!(markers, expected, "{context}");
        }
    }
}

/// The base record's executable and the last linked patch library of the fixture's profile.
fn base_executable(fixture: &Fixture) -> PathBuf {
    state_dir(fixture).join("base").join(fixture.package())
}

fn linked_library(fixture: &Fixture) -> PathBuf {
    state_dir(fixture).join("work").join("patch.so")
}

fn state_dir(fixture: &Fixture) -> PathBuf {
    fixture
        .target()
        .join("hotpatch")
        .join(fixture.profile().name())
}

/// The demangled names of the functions `path`'s symbol table has at `address`, with sizes.
fn functions_at(path: &Path, address: u64) -> Vec<(String, u64)> {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    file.symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text && s.address() == address)
        .map(|s| {
            let name = format!("{:#}", rustc_demangle::demangle(s.name().unwrap()));
            (name, s.size())
        })
        .collect()
}

/// Edits, builds the patch and checks its entry redirects: their names are `expected` exactly,
/// and each points at its function in the running executable (with its size) and in the linked
/// patch library. Returns the patch and its redirects.
fn redirects_of_edit(
    fixture: &Fixture,
    file: &str,
    edit: (&str, &str),
    expected: &[&str],
) -> (PathBuf, Vec<EntryRedirect>) {
    fixture.edit(file, edit.0, edit.1);
    let patch = fixture.build_patch(&format!("entry-{}.hotpatch", expected[0]));
    let manifest = PatchFile::parse(&std::fs::read(&patch).unwrap())
        .expect("a patch file")
        .manifest;
    let redirects = manifest.entry_redirects;
    let mut names: Vec<&str> = redirects.iter().map(|r| r.name.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names, expected, "the functions redirected: {redirects:#?}");
    let (executable, library) = (base_executable(fixture), linked_library(fixture));
    for redirect in &redirects {
        let host = functions_at(&executable, redirect.host_offset);
        assert!(
            host.contains(&(redirect.name.clone(), redirect.host_size)),
            "{redirect:?} points at {host:?} in {}",
            executable.display()
        );
        let new: Vec<String> = functions_at(&library, redirect.patch_offset)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert!(
            new.contains(&redirect.name),
            "{redirect:?} points at {new:?} in {}",
            library.display()
        );
    }
    (patch, redirects)
}

/// Applies `patch` to the running app: its busy thread, which never reaches a safe point, runs
/// the new code (`expected`); a rollback brings back the base's.
fn runs_then_rolls_back(
    fixture: &Fixture,
    app: &mut EntryApp,
    patch: &Path,
    expected: Markers,
    edited: &str,
) {
    let applied = fixture.apply(patch).success();
    let context = format!("after the patch of {edited}: {}", applied.describe());
    app.wait_for(expected, &context);
    let rolled_back = fixture.rollback().success();
    let context = format!("after rolling back {edited}: {}", rolled_back.describe());
    app.wait_for(BASE, &context);
}

fn every_changed_function_is_redirected(profile: Profile) {
    let fixture = Fixture::entry(locations!(), profile);
    let mut app = EntryApp::start(&fixture);
    // A plain library function, called only by the binary's busy thread.
    let label = ("(mix(round) >> 63) + 1", "(mix(round) >> 63) + 2");
    let (patch, _) = redirects_of_edit(&fixture, "shapes/src/lib.rs", label, &["shapes::label"]);
    fixture.edit("shapes/src/lib.rs", label.1, label.0);
    let lib = Markers { lib: 2, ..BASE };
    runs_then_rolls_back(&fixture, &mut app, &patch, lib, "shapes::label");
    // A helper of the binary crate.
    let helper = (
        "(shapes::mix(round) >> 63) + 10",
        "(shapes::mix(round) >> 63) + 20",
    );
    let main = "entryapp/src/main.rs";
    let (patch, _) = redirects_of_edit(&fixture, main, helper, &["entryapp::helper"]);
    fixture.edit(main, helper.1, helper.0);
    let helped = Markers { helper: 20, ..BASE };
    runs_then_rolls_back(&fixture, &mut app, &patch, helped, "entryapp::helper");
    // The small leaf function of another crate. In release it is inlined into
    // `shapes::measure`, whose crate is rebuilt against it, and nowhere else: the executable
    // has no `leaf::bump` left to redirect.
    let bump = ("x + 100", "x + 200");
    let leaf = match profile {
        Profile::Dev => ["leaf::bump"],
        Profile::Release => ["shapes::measure"],
    };
    let (patch, _) = redirects_of_edit(&fixture, "leaf/src/lib.rs", bump, &leaf);
    fixture.edit("leaf/src/lib.rs", bump.1, bump.0);
    let leafed = Markers { leaf: 200, ..BASE };
    runs_then_rolls_back(&fixture, &mut app, &patch, leafed, "leaf::bump");
    // `main` runs once: a change to it is refused, naming it.
    let interval = (".unwrap_or(50)", ".unwrap_or(60)");
    fixture.edit(main, interval.0, interval.1);
    fixture
        .build_refused("main.hotpatch", "main-changed")
        .stderr_names(&["entryapp::main", "restart"]);
    fixture.edit(main, interval.1, interval.0);
    app.expect(BASE, "building patches changes nothing in the running app");
}

#[test]
fn every_changed_function_is_redirected_dev() {
    every_changed_function_is_redirected(Profile::Dev);
}

/// In release the leaf is inlined into `shapes::measure`: its crate is rebuilt against the new
/// leaf and `measure` is redirected too.
#[test]
fn every_changed_function_is_redirected_release() {
    every_changed_function_is_redirected(Profile::Release);
}

/// `watch` patches a save of a plain library function into the running app with an entry
/// redirect, by default, and lists it as running now.
#[test]
fn watch_redirects_a_saved_function_and_says_it_runs_now() {
    let fixture = Fixture::entry(locations!(), Profile::Dev);
    let mut app = EntryApp::start_with(&fixture, "watch");
    let mark = app.run.stderr_text().len();
    fixture.edit(
        "shapes/src/lib.rs",
        "(mix(round) >> 63) + 1",
        "(mix(round) >> 63) + 3",
    );
    app.wait_for(
        Markers { lib: 3, ..BASE },
        "after watch patched shapes::label",
    );
    let said = wait_for_text(|| app.run.stderr_text(), mark, "running now");
    assert!(
        said.contains("shapes::label (entry redirected: running now)"),
        "watch lists the redirected function as running now: {said}"
    );
    // Saved back as it was built: the entry gets its own bytes again, and watch says so.
    let mark = app.run.stderr_text().len();
    fixture.edit(
        "shapes/src/lib.rs",
        "(mix(round) >> 63) + 3",
        "(mix(round) >> 63) + 1",
    );
    app.wait_for(BASE, "after watch gave shapes::label its own code back");
    let said = wait_for_text(|| app.run.stderr_text(), mark, "running now");
    assert!(
        said.contains("shapes::label (back to its own code: running now)"),
        "watch says the function runs its own code again: {said}"
    );
}

/// In dev no crate is rebuilt for the leaf's callers: a signature change of `leaf::bump` leaves
/// `shapes::measure` calling the old one, and is refused, naming it.
#[test]
fn a_signature_change_with_an_unpatched_caller_is_refused() {
    let fixture = Fixture::entry(locations!(), Profile::Dev);
    let mut app = EntryApp::start(&fixture);
    let signature = (
        "pub fn bump(x: u64) -> u64 {\n    x + 100",
        "pub fn bump(x: u64) -> u32 {\n    x as u32 + 100",
    );
    fixture.edit("leaf/src/lib.rs", signature.0, signature.1);
    fixture
        .build_refused("signature.hotpatch", "signature-changed")
        .stderr_names(&["leaf::bump", "shapes::measure", "restart"]);
    fixture.edit("leaf/src/lib.rs", signature.1, signature.0);
    app.expect(BASE, "after the refused signature change");
}
