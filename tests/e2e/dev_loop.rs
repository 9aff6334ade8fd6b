//! End to end: the dev loop keeps the app alive through mistakes. Under `cargo hotpatch watch`, a
//! patch whose code panics is rolled back at once (the call that panicked runs again on the
//! previous version), the app keeps its state and goes on, watch says what panicked, where, and
//! what it rolled back, and the next save patches again.

use hotreload_tests::{locations, wait_for_text, Fixture, Profile, RunningApp};

/// Waits until the tool's stderr, after `from` bytes, contains `needle`, reading the app's lines
/// meanwhile (each is checked as it comes).
fn wait_for_stderr(app: &mut RunningApp, from: usize, needle: &str) -> String {
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
fn a_panic_in_patched_code_rolls_the_patch_back_and_the_next_save_patches_again() {
    let fixture = Fixture::new(locations!(), Profile::Dev);
    let mut app = RunningApp::start_with(&fixture, "watch");
    wait_for_stderr(&mut app, 0, "Watching");
    app.wait_until_watch_is_ready();
    let pid = app.pid().expect("the app's pid");
    fixture.edit_all(
        "logic/src/lib.rs",
        &[("\"v1\"", "\"v2\""), ("failure from v1", "failure from v2")],
    );
    let good = app.wait_for_version("v2");

    // `Report::fmt` (a hot method taking `&self` and `&mut Formatter`) now indexes out of bounds
    // on every call. Each line the app prints goes through it.
    let mark = app.stderr_text().len();
    fixture.edit(
        "logic/src/lib.rs",
        "\"v2\", self.steps",
        "[\"v3\"][self.steps as usize], self.steps",
    );
    let said = wait_for_stderr(&mut app, mark, "Rolled back");
    let line = said
        .lines()
        .find(|line| line.contains("patched code panicked"))
        .unwrap_or_else(|| panic!("watch shows the panic: {said}"));
    assert!(
        line.contains("<logic::Report as fmt::Display>::fmt")
            && line.contains("index out of bounds")
            && line.contains("logic/src/lib.rs:"),
        "watch names the function, the panic's message and its location: {line}"
    );
    assert!(
        said.contains("the call ran again on it"),
        "the call that panicked ran again on the previous version: {said}"
    );
    // Same process, same state: the count went on, and every line was printed by v2's code
    // (the panicking call ran again on it), none by the patch that panicked.
    let after = app.expect_serving("v2", "after the patch that panicked was rolled back");
    assert!(
        after.steps > good.steps,
        "the state was kept: {good:?} then {after:?}"
    );
    assert_eq!(app.pid(), Some(pid), "the app was not restarted");
    assert!(
        !app.stderr_text()[mark..].contains("Restarting"),
        "no restart: {said}"
    );

    // The next save patches again.
    fixture.edit_all(
        "logic/src/lib.rs",
        &[
            ("[\"v3\"][self.steps as usize]", "\"v4\""),
            ("self.tagged(\"v2\")", "self.tagged(\"v4\")"),
            ("failure from v2", "failure from v4"),
        ],
    );
    app.wait_for_version("v4");
    app.expect_serving("v4", "after the next save");
    assert_eq!(app.pid(), Some(pid), "patched, not restarted");
}
