//! End to end at `--release`: `cargo hotpatch run --release` the fixture workspace, patch it with
//! `cargo hotpatch build --release`, and check that optimised code (`-O3`, no LTO) is patched the
//! way `DESIGN.md` says: public statics, tokio, panics and tracing spans work as in a dev build,
//! and a private static or thread-local is either shared with the running process or the patch is
//! refused, naming it. It is never silently forked.
//!
//! What the tool did with this fixture when the test was written (rustc 1.95, x86-64): both
//! private items of the base were shared. In the optimised build `counter::PRIVATE_COUNT` is a
//! global symbol of the host (exported, presumably because the small `count` is inlinable into
//! other crates) that the patch reaches through the GOT, so the dynamic loader binds it to the
//! host's copy; `perthread::PER_THREAD` is reached with the local-dynamic thread-local model,
//! which the tool redirects to the host's block. The private `LazyLock` a patch introduces in
//! `logic` was refused for the next patch: inlined, its code reads it in place ("its code reads
//! or writes it in place instead of through its address"). The test checks whichever of the two
//! outcomes the tool chooses, strictly, and prints which one it saw.
//!
//! The fixture's release profile keeps full debug information (`debug = true`, as the README asks):
//! step 1 patches a body-only edit of `logic`, whose types LLVM describes across debug-info units,
//! and step 1b checks that a real layout change is still refused, naming the type.
//!
//! The release fixture builds have a target directory of their own
//! (`$CARGO_TARGET_TMPDIR/fixture-target-release`), so this test and the dev ones never share a
//! cargo lock or the hotpatch state.

use std::path::Path;
use std::time::Instant;

use hotreload_tests::{locations, Fixture, Manifest, PatchFile, Profile, RunningApp};

/// A patch this test applied, innermost last: what rolling it back must undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// `logic` v1 to v2.
    Logic,
    /// `logic::step`, traced, with a second event.
    Traced,
    /// `logic::step` with a private `LazyLock` a patch introduced.
    Lazy,
    /// `counter::count` steps by 1000.
    Counter,
    /// `perthread::count_here` steps by 1000.
    PerThread,
}

/// What `build` did with a patch touching a private static or thread-local.
#[derive(Debug)]
enum Outcome {
    /// Built: the item is shared with the running process (checked after applying it).
    Shared,
    /// Refused, naming the item and why.
    Refused(String),
}

#[test]
fn release_builds_patch_share_or_refuse_private_state_and_roll_back() {
    let started = Instant::now();
    let fixture = Fixture::new(locations!(), Profile::Release);
    let mut app = RunningApp::start(&fixture);
    let first_tick = started.elapsed();

    // 0. The app is the optimised base build.
    let build_id = the_app_is_the_optimised_base_build(&fixture, &mut app);
    let mut applied = Vec::new();

    // 1. `logic` v1 to v2, built with `build --release` against the release base.
    logic_is_patched_against_the_release_base(&fixture, &mut app, &build_id, &mut applied);

    // 1b. A real layout change is still refused, naming the type, and the app keeps serving.
    layout_change_is_refused(&fixture, &mut app);

    // 1c. The tracing-instrumented `logic::step`, which reads a `LazyLock`.
    the_traced_function_is_patched(&fixture, &mut app, &mut applied);

    // 1d. A private `LazyLock` a patch introduces: the next patch shares it or is refused.
    let lazy = introduced_lazy_static_is_shared_or_refused(&fixture, &mut app, &mut applied);

    // 2. `counter::count` adds to a private static.
    let counter = private_static_is_shared_or_refused(&fixture, &mut app, &mut applied);

    // 3. `perthread::count_here` adds to a private thread-local.
    let perthread = private_thread_local_is_shared_or_refused(&fixture, &mut app, &mut applied);

    // 4. Rolling every patch back returns to v1 on the same state.
    every_patch_rolls_back(&fixture, &mut app, applied);

    let describe = |outcome: &Outcome| match outcome {
        Outcome::Shared => "shared with the running process".to_owned(),
        Outcome::Refused(why) => format!("refused: {why}"),
    };
    eprintln!(
        "e2e::release at -O3: logic::FAREWELL (a private LazyLock) {}; counter::PRIVATE_COUNT {}; perthread::PER_THREAD {}; first tick after {:.1?}, whole test {:.1?}",
        describe(&lazy),
        describe(&counter),
        describe(&perthread),
        first_tick,
        started.elapsed()
    );
}

/// Checks that the app runs the release base recorded at `-O3`; returns its build id.
fn the_app_is_the_optimised_base_build(fixture: &Fixture, app: &mut RunningApp) -> String {
    let pid = app.pid().expect("the app's pid");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("the app's executable");
    assert_eq!(
        exe,
        fixture.target().join("release/app"),
        "`run --release` runs the release build"
    );
    let base = read_base(fixture.target());
    let counter_args = base["crates"]
        .as_array()
        .expect("the base record lists crates")
        .iter()
        .find(|c| c["name"] == "counter")
        .and_then(|c| c["invocation"]["args"].as_array())
        .expect("the base record has counter's rustc invocation");
    assert!(
        counter_args
            .windows(2)
            .any(|pair| pair[0] == "-C" && pair[1] == "opt-level=3"),
        "the release base compiles counter at -O3: {counter_args:?}"
    );
    let build_id = base["identity"]["build_id"]
        .as_str()
        .expect("the base's build id")
        .to_owned();
    assert_eq!(
        fixture.status().build_id,
        build_id,
        "the running process is the recorded release base"
    );
    app.wait_for_version("v1");
    app.expect_serving("v1", "before any patch");
    build_id
}

fn logic_is_patched_against_the_release_base(
    fixture: &Fixture,
    app: &mut RunningApp,
    build_id: &str,
    applied: &mut Vec<Applied>,
) {
    fixture.edit("logic/src/lib.rs", "\"v1\"", "\"v2\"");
    fixture.edit("logic/src/lib.rs", "failure from v1", "failure from v2");
    let p2 = fixture.build_patch("p2.hotpatch");
    let manifest = patch_manifest(&p2);
    assert_eq!(
        (
            manifest.base.profile.as_str(),
            manifest.base.build_id.as_str()
        ),
        ("release", build_id),
        "`build --release` patches the release base"
    );
    assert_eq!(manifest.crates, ["logic"], "the patch is of `logic` alone");
    app.drain();
    let steps_before = app.last.as_ref().unwrap().steps;
    fixture.apply(&p2).success();
    applied.push(Applied::Logic);
    app.expect_patched("v2", steps_before);
}

/// A field added to `logic::notes::Note`, whose debug information the optimised build spreads
/// over several units (its members' types in others, `DW_FORM_ref_addr`): the build is refused
/// as changing that type's layout, and only that type's (`Notes` holds notes behind pointers).
/// The body-only patch before it checked the other side: no change is seen where there is none.
fn layout_change_is_refused(fixture: &Fixture, app: &mut RunningApp) {
    let edits = [
        (
            "    pub tags: Vec<Tag>,\n}",
            "    pub tags: Vec<Tag>,\n    pub seen: u8,\n}",
        ),
        (
            "        tags: tags_of(id),\n",
            "        tags: tags_of(id),\n        seen: 0,\n",
        ),
    ];
    fixture.edit_all("logic/src/notes.rs", &edits);
    let output = fixture.build_refused("layout.hotpatch", "layout-changed");
    output.stderr_names(&["`logic::notes::Note`", "layout", "restart"]);
    assert!(
        !output.stderr.contains("more)"),
        "only `logic::notes::Note` changed: {}",
        output.describe()
    );
    let undo: Vec<_> = edits.iter().map(|(from, to)| (*to, *from)).collect();
    fixture.edit_all("logic/src/notes.rs", &undo);
    app.expect_serving("v2", "after the refused layout change");
}

/// A patch of `logic::step` (a `#[tracing::instrument]` span, an `info!` event, a `LazyLock` read)
/// at `-O3`: it builds and applies, the new code runs (a second event per tick) with every event
/// reaching the subscriber inside the span, each callsite registers once, and the lazy value is
/// the running one (initialised once).
fn the_traced_function_is_patched(
    fixture: &Fixture,
    app: &mut RunningApp,
    applied: &mut Vec<Applied>,
) {
    let before = app.expect_serving("v2", "before patching the traced function");
    assert_eq!(before.lazy, Some(1), "the base initialised GREETING once");
    fixture.edit(
        "logic/src/lib.rs",
        "\"stepped\");",
        "\"stepped\"); tracing::info!(\"again\");",
    );
    let traced = fixture.build_patch("traced.hotpatch");
    fixture.apply(&traced).success();
    applied.push(Applied::Traced);
    let patched = app.wait_until("two events per tick in step's span", |last, tick| {
        tick.traced.zip(last.traced).map(|(now, then)| now - then) == Some(2)
    });
    assert!(
        patched.callsites > before.callsites,
        "the new event's callsite registered itself: {before:?} then {patched:?}"
    );
    let settled = app.expect_serving("v2", "after patching the traced function");
    for _ in 0..2 {
        let tick = app.expect_serving("v2", "after patching the traced function");
        assert_eq!(
            tick.callsites, settled.callsites,
            "{settled:?} then {tick:?}"
        );
        assert_eq!(
            tick.lazy,
            Some(1),
            "GREETING was not initialised again: {tick:?}"
        );
        assert_eq!(
            tick.traced.unwrap() - settled.traced.unwrap(),
            2 * (tick.tick - settled.tick),
            "both events of each step reached the subscriber: {settled:?} then {tick:?}"
        );
    }
    // The optimised patched process does what an optimised fresh build of the same sources does.
    app.matches_a_fresh_build(fixture, "after patching the traced function at -O3");
}

/// A patch introduces a private `LazyLock` read by `logic::step`: it is initialised once. The next
/// patch of `step` either reaches that running copy (it is not initialised again) or is refused,
/// naming it: never a fresh copy initialised a second time. The sources then go back to the
/// traced patch's, so later patches do not reach it.
fn introduced_lazy_static_is_shared_or_refused(
    fixture: &Fixture,
    app: &mut RunningApp,
    applied: &mut Vec<Applied>,
) -> Outcome {
    let traced = fixture.read("logic/src/lib.rs");
    fixture.edit(
        "logic/src/lib.rs",
        "tracing::info!(\"again\");",
        "tracing::info!(farewell = *FAREWELL, \"again\");",
    );
    fixture.replace_file(
        "logic/src/lib.rs",
        &format!(
            "{}\nstatic FAREWELL: LazyLock<u64> = LazyLock::new(|| {{\n    LAZY_INITS.fetch_add(1, Ordering::SeqCst);\n    7\n}});\n",
            fixture.read("logic/src/lib.rs")
        ),
    );
    let introducing = fixture.build_patch("lazy.hotpatch");
    fixture.apply(&introducing).success();
    applied.push(Applied::Lazy);
    app.wait_until("FAREWELL to be initialised", |_, tick| tick.lazy == Some(2));
    fixture.edit("logic/src/lib.rs", "\"again\"", "\"once more\"");
    let outcome = build_shared_or_refused(fixture, app, "logic", "logic::FAREWELL");
    if let Outcome::Shared = outcome {
        applied.push(Applied::Lazy);
    }
    for _ in 0..2 {
        let tick = app.expect_serving("v2", "after patching code that reads FAREWELL");
        assert_eq!(
            tick.lazy,
            Some(2),
            "FAREWELL was not initialised again: {tick:?}"
        );
    }
    fixture.replace_file("logic/src/lib.rs", &traced);
    outcome
}

fn private_static_is_shared_or_refused(
    fixture: &Fixture,
    app: &mut RunningApp,
    applied: &mut Vec<Applied>,
) -> Outcome {
    app.count_steps = vec![1, 1000];
    fixture.edit(
        "counter/src/lib.rs",
        "fetch_add(1, Ordering::SeqCst)",
        "fetch_add(1000, Ordering::SeqCst)",
    );
    let counter = build_shared_or_refused(fixture, app, "counter", "counter::PRIVATE_COUNT");
    match counter {
        Outcome::Shared => {
            // The first tick of the patched code adds 1000 to the host's count, not to a copy.
            app.wait_until("count to step by 1000", |last, tick| {
                tick.count == last.count + 1000
            });
            app.count_steps = vec![1000];
            app.expect_serving("v2", "after patching code that uses a private static");
            applied.push(Applied::Counter);
        }
        Outcome::Refused(_) => {
            app.count_steps = vec![1];
            app.expect_serving("v2", "after refusing the patch of counter");
            fixture.edit(
                "counter/src/lib.rs",
                "fetch_add(1000, Ordering::SeqCst)",
                "fetch_add(1, Ordering::SeqCst)",
            );
        }
    }
    counter
}

fn private_thread_local_is_shared_or_refused(
    fixture: &Fixture,
    app: &mut RunningApp,
    applied: &mut Vec<Applied>,
) -> Outcome {
    let here_steps_before = app.here_steps.clone();
    app.here_steps = vec![1, 1000];
    fixture.edit(
        "perthread/src/lib.rs",
        "PER_THREAD.get() + 1)",
        "PER_THREAD.get() + 1000)",
    );
    let perthread = build_shared_or_refused(fixture, app, "perthread", "perthread::PER_THREAD");
    match perthread {
        Outcome::Shared => {
            // Continuing from the host thread's value: a forked thread-local would start at 1000.
            app.wait_until("here to step by 1000", |last, tick| {
                tick.here == last.here + 1000
            });
            app.here_steps = vec![1000];
            app.expect_serving("v2", "after patching code that uses a private thread-local");
            applied.push(Applied::PerThread);
        }
        Outcome::Refused(_) => {
            app.here_steps = here_steps_before;
            app.expect_serving("v2", "after refusing the patch of perthread");
            fixture.edit(
                "perthread/src/lib.rs",
                "PER_THREAD.get() + 1000)",
                "PER_THREAD.get() + 1)",
            );
        }
    }
    perthread
}

/// Rolls back every patch in `applied`, innermost first, checking the state after each.
fn every_patch_rolls_back(fixture: &Fixture, app: &mut RunningApp, mut applied: Vec<Applied>) {
    while let Some(patch) = applied.pop() {
        match patch {
            Applied::PerThread => {
                app.here_steps = vec![1, 1000];
                fixture.rollback().success();
                app.wait_until("here to step by 1 again", |last, tick| {
                    tick.here == last.here + 1
                });
                app.here_steps = vec![1];
                app.expect_serving("v2", "after rolling back the patch of perthread");
            }
            Applied::Counter => {
                app.count_steps = vec![1, 1000];
                fixture.rollback().success();
                app.wait_until("count to step by 1 again", |last, tick| {
                    tick.count == last.count + 1
                });
                app.count_steps = vec![1];
                app.expect_serving("v2", "after rolling back the patch of counter");
            }
            Applied::Lazy => {
                fixture.rollback().success();
                app.expect_serving("v2", "after rolling back a patch reading FAREWELL");
            }
            Applied::Traced => {
                fixture.rollback().success();
                app.wait_until("one event per tick again", |last, tick| {
                    tick.traced.zip(last.traced).map(|(now, then)| now - then) == Some(1)
                });
                app.expect_serving("v2", "after rolling back the traced patch");
            }
            Applied::Logic => {
                fixture.rollback().success();
                app.wait_for_version("v1");
                app.expect_serving("v1", "after rolling back to v1");
            }
        }
    }
    let status = fixture.status();
    assert!(
        status.functions.iter().all(|f| f.patch.is_none()),
        "every hot function runs the base's code again: {:?}",
        status.functions
    );
    assert!(
        !status.patches.is_empty() && status.patches.iter().all(|p| !p.active),
        "every patch is rolled back: {:?}",
        status.patches
    );
}

/// Builds a patch of the current sources, which reach the private item `item` of `krate`.
///
/// Either the build is refused (exit code 3, its JSON record naming `private-static-would-fork`),
/// naming `item` and why, and the app keeps running, or it builds a patch of `krate` that this
/// applies (the caller then checks that the item is shared).
fn build_shared_or_refused(
    fixture: &Fixture,
    app: &mut RunningApp,
    krate: &str,
    item: &str,
) -> Outcome {
    let file = format!("{krate}.hotpatch");
    let (path, output) = fixture.build_with(&file, &["--message-format", "json"]);
    if output.succeeded() {
        let manifest = patch_manifest(&path);
        assert!(
            manifest.crates.iter().any(|c| c == krate),
            "the patch carries `{krate}`: {:?}",
            manifest.crates
        );
        fixture.apply(&path).success();
        return Outcome::Shared;
    }
    // Refused as needing a restart, because a private static would fork.
    let output = output.needs_restart("private-static-would-fork");
    assert!(
        !path.exists(),
        "a refused `build` still wrote {}",
        path.display()
    );
    let named = format!("`{item}`");
    output.stderr_names(&[named.as_str(), "refused"]);
    // Why: `... cannot be redirected to the running process's copy (WHY) ...`.
    let marker = "cannot be redirected to the running process's copy (";
    let why = output
        .stderr
        .split_once(marker)
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(why, _)| why.trim().to_owned())
        .filter(|why| !why.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "the refusal says why `{item}` cannot be shared: {}",
                output.describe()
            )
        });
    app.assert_alive(&format!("after refusing the patch of {krate}"));
    Outcome::Refused(why)
}

/// The base record `run --release` wrote.
fn read_base(target: &Path) -> serde_json::Value {
    let path = target.join("hotpatch/release/base/base.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The manifest of a patch file.
fn patch_manifest(path: &Path) -> Manifest {
    let bytes = std::fs::read(path).expect("reading a patch file");
    PatchFile::parse(&bytes)
        .expect("a valid patch file")
        .manifest
}
