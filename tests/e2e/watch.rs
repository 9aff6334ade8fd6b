//! End to end: `cargo hotpatch watch` on a copy of the fixture workspace. Save an edit and the
//! running app runs it; a broken build leaves the app on its last good code; a reverted edit is
//! patched back; an unchanged save does nothing; an unpatchable change rebuilds and restarts.

use std::time::Duration;

use hotreload_tests::{locations, wait_for_text, Fixture, Profile, RunningApp};

/// Waits until the tool's stderr, after `from` bytes, contains `needle`, reading the app's lines
/// meanwhile (each is checked as it comes).
/// Everything the app and watch printed on stderr, once `needle` appears after `from`.
pub(crate) fn wait_for_stderr(app: &mut RunningApp, from: usize, needle: &str) -> String {
    wait_for_text(
        || {
            app.drain();
            app.stderr_text()
        },
        from,
        needle,
    )
}

#[test]
fn watch_patches_saves_survives_broken_builds_and_restarts_when_it_must() {
    let fixture = Fixture::new(locations!(), Profile::Dev);
    let mut app = RunningApp::start_with(&fixture, "watch");
    watch_connects_to_the_app(&mut app);
    an_edit_is_patched_into_the_running_app(&fixture, &mut app);
    moved_lines_are_no_change_and_a_burst_says_it_once(&fixture, &mut app);
    a_rollback_from_another_terminal_shows_and_the_next_save_compares_with_what_runs(
        &fixture, &mut app,
    );
    an_unchanged_save_does_nothing(&fixture, &mut app);
    a_compile_error_keeps_the_last_good_code(&fixture, &mut app);
    fixing_and_reverting_patch_again(&fixture, &mut app);
    a_signature_change_restarts_the_app(&fixture, &mut app);
    a_dead_app_starts_again_on_the_next_save(&fixture, &mut app);
}

fn watch_connects_to_the_app(app: &mut RunningApp) {
    wait_for_stderr(app, 0, "Watching");
    app.expect_serving("v1", "before any edit");
    // The app's init() connected to watch, which checked it runs the build it made.
    let pid = app.pid().expect("the app's pid");
    let said = wait_for_stderr(app, 0, "Connected");
    assert!(
        said.contains(&format!("app (pid {pid}, build")),
        "watch reports the app that connected to it: {said}"
    );
    assert!(
        said.contains("control socket") && said.contains("control.sock"),
        "watch prints the app's control socket: {said}"
    );
    // The first patch lists what changed against the base compiled the way patches are.
    app.wait_until_watch_is_ready();
}

fn an_edit_is_patched_into_the_running_app(fixture: &Fixture, app: &mut RunningApp) {
    // An edit is patched into the running app: same process, counts continue.
    let mark = app.stderr_text().len();
    fixture.edit_all(
        "logic/src/lib.rs",
        &[("\"v1\"", "\"v2\""), ("failure from v1", "failure from v2")],
    );
    app.wait_for_version("v2");
    let said = wait_for_stderr(app, mark, "Patched");
    assert!(
        said.contains("logic"),
        "watch names the crate it patched: {said}"
    );
    let said = wait_for_stderr(app, mark, "(hot: running now)");
    assert!(
        said.contains("logic::Report::fmt") && said.contains("logic::fail"),
        "watch names the hot functions whose code changed: {said}"
    );
    assert!(
        !said.contains("logic::step"),
        "logic::step did not change and is not listed: {said}"
    );
    app.matches_a_fresh_build(fixture, "after watch patched v2");
}

/// The `Changed` lines watch printed after `mark`, once both are there: (hot, new code).
fn changed_lines(app: &mut RunningApp, mark: usize) -> (String, String) {
    let said = wait_for_stderr(app, mark, "(new or inlined: ");
    let line = |suffix: &str| {
        said.lines()
            .filter_map(|line| line.trim().strip_prefix("Changed "))
            .filter_map(|line| line.strip_suffix(suffix))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    (
        line(" (hot: running now)"),
        line(" (new or inlined: runs where changed code calls it)"),
    )
}

fn moved_lines_are_no_change_and_a_burst_says_it_once(fixture: &Fixture, app: &mut RunningApp) {
    // A private helper added near the top moves every line below it: what only moved (panic
    // locations, tracing callsites, async blocks' panics) is not listed; what calls the helper is.
    let mark = app.stderr_text().len();
    fixture.edit_all(
        "logic/src/lib.rs",
        &[
            (
                "use hotreload_runtime::hot;\n",
                "use hotreload_runtime::hot;\n\n/// Added by the tests: moves every line below.\nfn suffix() -> &'static str {\n    \"\"\n}\n",
            ),
            (
                "panic!(\"failure from v2\")",
                "panic!(\"failure from v2{}\", suffix())",
            ),
        ],
    );
    // A second save of the same edit while the first builds: its edit already runs, so
    // nothing more is said about it.
    std::thread::sleep(Duration::from_millis(30));
    let lib = fixture.root().join("logic/src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, text.replace("moves every line", "moves all lines")).unwrap();
    let (hot, not_hot) = changed_lines(app, mark);
    assert_eq!(
        hot, "logic::fail",
        "only `fail` changed of the hot functions"
    );
    assert_eq!(not_hot, "logic::suffix", "only the new helper is new code");
    std::thread::sleep(Duration::from_millis(1500));
    app.expect_serving("v2", "after a helper was added");
    let said = app.stderr_text()[mark..].to_owned();
    assert_eq!(
        said.matches("Patched ").count(),
        1,
        "one patch for the burst of two saves: {said}"
    );
    assert!(
        !said.contains("Unchanged") && !said.contains("error"),
        "the second save's edit already runs: nothing is said about it: {said}"
    );
}

fn a_rollback_from_another_terminal_shows_and_the_next_save_compares_with_what_runs(
    fixture: &Fixture,
    app: &mut RunningApp,
) {
    // `status` and `history` without `--target` ask this workspace's app.
    let status = fixture.tool(&["status"]).success();
    assert!(
        status.stdout.contains("control.sock") && status.stdout.contains("[active]"),
        "status asks the app watch started: {}",
        status.describe()
    );
    let history = fixture.tool(&["history"]).success();
    assert!(
        history.stdout.contains(" UTC ("),
        "history shows dates, not epoch seconds: {}",
        history.describe()
    );
    // A rollback from another terminal: watch says so.
    let mark = app.stderr_text().len();
    fixture.tool(&["rollback"]).success();
    let said = wait_for_stderr(app, mark, "from outside watch");
    assert!(
        said.contains("Rolled back"),
        "watch shows the rollback made elsewhere: {said}"
    );
    wait_for_stderr(
        app,
        mark,
        "the next save patches the current sources over it",
    );
    app.expect_serving("v2", "after the rollback to the first patch");
    // The next save compares with what runs now (the first patch, without the helper), not
    // with the last build: `fail` and the helper are listed again, though only the helper's
    // body changed since that build.
    let mark = app.stderr_text().len();
    fixture.edit(
        "logic/src/lib.rs",
        "    \"\"\n}",
        "    \"!\".trim_end_matches('!')\n}",
    );
    let (hot, not_hot) = changed_lines(app, mark);
    let said = app.stderr_text();
    assert_eq!(
        hot, "logic::fail",
        "compared with the code that runs: {said}"
    );
    assert_eq!(
        not_hot, "logic::suffix",
        "compared with the code that runs: {said}"
    );
    app.expect_serving("v2", "after patching over the rollback");
}

fn an_unchanged_save_does_nothing(fixture: &Fixture, app: &mut RunningApp) {
    // Saving a file without changing it does nothing.
    let mark = app.stderr_text().len();
    let lib = fixture.root().join("logic/src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, &text).unwrap();
    app.expect_serving("v2", "after an unchanged save");
    std::thread::sleep(Duration::from_millis(500));
    app.expect_serving("v2", "after an unchanged save");
    let said = app.stderr_text()[mark..].to_owned();
    assert!(
        !said.contains("Patched"),
        "an unchanged save must not patch anything: {said}"
    );
}

fn a_compile_error_keeps_the_last_good_code(fixture: &Fixture, app: &mut RunningApp) {
    // A compile error is shown; the app keeps running its last good code.
    let mark = app.stderr_text().len();
    fixture.edit(
        "logic/src/lib.rs",
        "\"v2\", self.steps",
        "\"v2\" self.steps",
    );
    let said = wait_for_stderr(app, mark, "keeps running its last good code");
    assert!(
        said.contains("expected one of"),
        "rustc's diagnostic is shown: {said}"
    );
    app.expect_serving("v2", "after a broken build");
}

fn fixing_and_reverting_patch_again(fixture: &Fixture, app: &mut RunningApp) {
    // Fixing it and editing on patches again.
    fixture.edit_all(
        "logic/src/lib.rs",
        &[
            ("\"v2\" self.steps", "\"v3\", self.steps"),
            ("failure from v2", "failure from v3"),
        ],
    );
    app.wait_for_version("v3");

    // Reverting to the original text is patched like any other edit, without a restart.
    fixture.edit_all(
        "logic/src/lib.rs",
        &[("\"v3\"", "\"v1\""), ("failure from v3", "failure from v1")],
    );
    app.wait_for_version("v1");
    app.expect_serving("v1", "after reverting to the base's text");
    app.matches_a_fresh_build(fixture, "after watch patched the base's text back");
}

fn a_signature_change_restarts_the_app(fixture: &Fixture, app: &mut RunningApp) {
    // A hot function's signature cannot change in a running process: watch says so, rebuilds
    // and restarts the app, which then runs the new code from a fresh start.
    let mark = app.stderr_text().len();
    app.expect_restart();
    fixture.edit_all(
        "logic/src/lib.rs",
        &[
            ("pub fn fail() -> u32", "pub fn fail() -> u64"),
            ("\"v1\"", "\"v4\""),
            ("failure from v1", "failure from v4"),
        ],
    );
    let said = wait_for_stderr(app, mark, "rebuilding and restarting");
    assert!(
        said.contains("logic::fail") && said.contains("signature"),
        "watch explains in one line why it restarts: {said}"
    );
    app.wait_for_version("v4");
    assert!(app.restarted(), "the app was restarted");
    app.expect_serving("v4", "after the restart");
    let restarted = app.pid().expect("the restarted app's pid");
    wait_for_stderr(app, mark, &format!("app (pid {restarted}, build"));
}

fn a_dead_app_starts_again_on_the_next_save(fixture: &Fixture, app: &mut RunningApp) {
    // When the app dies, watch says so; the next save builds and starts it again.
    let mark = app.stderr_text().len();
    let pid = app.pid().expect("the restarted app's pid");
    app.expect_restart();
    // SAFETY: signalling a process this test started (through watch) has no memory effects.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    wait_for_stderr(app, mark, "the app exited");
    fixture.edit_all(
        "logic/src/lib.rs",
        &[("\"v4\"", "\"v5\""), ("failure from v4", "failure from v5")],
    );
    app.wait_for_version("v5");
    assert!(app.restarted(), "the app was started again");
    app.expect_serving("v5", "after starting the app again");
}

#[test]
fn with_no_restart_an_unpatchable_change_is_explained_and_the_app_keeps_running() {
    let fixture = Fixture::new(locations!(), Profile::Dev);
    let mut app = RunningApp::start_with_args(&fixture, "watch", &["--no-restart"]);
    wait_for_stderr(&mut app, 0, "Watching");
    app.expect_serving("v1", "before any edit");
    let pid = app.pid().expect("the app's pid");

    // A manifest change cannot be patched: explained in one line, and no restart.
    let mark = app.stderr_text().len();
    let manifest = fixture.root().join("logic/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, format!("{text}\n# a comment\n")).unwrap();
    let said = wait_for_stderr(&mut app, mark, "--no-restart");
    assert!(
        said.contains("logic/Cargo.toml"),
        "watch names the file that cannot be patched: {said}"
    );
    app.expect_serving("v1", "after an unpatchable change with --no-restart");
    assert_eq!(app.pid(), Some(pid), "the app was not restarted");

    // Patchable edits still patch.
    fixture.edit_all(
        "logic/src/lib.rs",
        &[("\"v1\"", "\"v2\""), ("failure from v1", "failure from v2")],
    );
    app.wait_for_version("v2");
    assert_eq!(app.pid(), Some(pid));

    // Code that uses a crate no manifest lists yet waits for the manifest: one quiet line, said
    // once however often the file is saved, no burst of rustc's errors.
    let mark = app.stderr_text().len();
    let uses_missing = (
        "pub fn fail() -> u32 {",
        "pub fn fail() -> u32 {\n    let _ = fastrand_not_added::u32(..);",
    );
    fixture.edit("logic/src/lib.rs", uses_missing.0, uses_missing.1);
    let said = wait_for_stderr(&mut app, mark, "Waiting");
    fixture.edit(
        "logic/src/lib.rs",
        "fastrand_not_added::u32(..);",
        "fastrand_not_added::u32(..); ",
    );
    std::thread::sleep(Duration::from_millis(1500));
    let said_after = app.stderr_text()[mark..].to_owned();
    assert!(
        said.contains("`fastrand_not_added` in a Cargo.toml") && !said_after.contains("error"),
        "watch waits for the manifest quietly: {said_after}"
    );
    assert_eq!(
        said_after.matches("Waiting").count(),
        1,
        "said once: {said_after}"
    );
    fixture.edit(
        "logic/src/lib.rs",
        "\n    let _ = fastrand_not_added::u32(..); ",
        "",
    );
    app.expect_serving("v2", "while the code waited for its manifest");

    // Ctrl-C reaching watch alone stops it and the app within a couple of seconds.
    let (code, app_gone) = app.interrupt_tool(Duration::from_secs(3));
    assert_eq!(
        code,
        Some(130),
        "watch exits as interrupted: {}",
        app.stderr_tail()
    );
    assert!(app_gone, "the app stopped with watch");
    assert!(
        app.stderr_text().contains("Stopping"),
        "{}",
        app.stderr_tail()
    );
}
