//! End to end: the dev loop keeps the app alive through mistakes and its state through type
//! changes. Under `cargo hotpatch watch`, a patch whose code panics is rolled back at once (the
//! call that panicked runs again on the previous version), the app keeps its state and goes on,
//! watch says what panicked, where, and what it rolled back, and the next save patches again; a
//! `#[hot_state]` type's fields change without a version bump or a migration, serde carrying the
//! values across.

use hotreload_tests::{locations, wait_for_text, Fixture, Profile, RunningApp};

use crate::gateway::{Connection, Gateway};
use crate::watch::wait_for_stderr;

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
    a_panic_in_a_new_helper_is_caught_at_the_hot_function(&fixture, &mut app, pid);
}

/// A panic in code the patch brings in that is not hot (a new helper) is caught at the hot
/// function the call went through: `Report::edition`, which runs again on the previous code.
fn a_panic_in_a_new_helper_is_caught_at_the_hot_function(
    fixture: &Fixture,
    app: &mut RunningApp,
    pid: u32,
) {
    let mark = app.stderr_text().len();
    let lib = fixture.read("logic/src/lib.rs");
    fixture.replace_file(
        "logic/src/lib.rs",
        &format!(
            "{}\nfn pick(steps: u64) -> u64 {{\n    [steps][steps as usize]\n}}\n",
            lib.replace(
                "self.tagged(\"v4\")",
                "{ std::hint::black_box(pick(self.steps)); self.tagged(\"v4\") }"
            )
        ),
    );
    let said = wait_for_stderr(app, mark, "Rolled back");
    assert!(
        said.contains("patched code panicked in logic::Report::edition")
            && said.contains("index out of bounds"),
        "caught at the nearest hot function: {said}"
    );
    let after = app.expect_serving("v4", "after the helper's panic was rolled back");
    assert_eq!(
        after.edition.as_deref(),
        Some(format!("v4@{}", after.steps).as_str()),
        "`edition` ran again on v4's code: {after:?}"
    );
    assert_eq!(app.pid(), Some(pid), "the app was not restarted");
}

/// Waits until the tool's stderr, after `from` bytes, contains `needle`.
fn wait_for_gateway_tool(gateway: &Gateway, from: usize, needle: &str) -> String {
    wait_for_text(|| gateway.stderr_text(), from, needle)
}

#[test]
fn state_fields_change_under_watch_without_a_version_bump_or_a_migration() {
    let fixture = Fixture::gateway(locations!(), Profile::Dev);
    let gateway = Gateway::start_with(&fixture, "watch");
    wait_for_gateway_tool(&gateway, 0, "Connected");
    let mut client = Connection::open(&gateway.address);
    assert_eq!(client.ask("login ada").unwrap(), "ok v1 hello ada");
    assert_eq!(client.ask("note hi").unwrap(), "ok v1 notes=1");
    let v1 = fixture.read("gateway/src/lib.rs");

    // Two fields added, one as an `Option`, one with `#[serde(default)]`; the version stays 1 and
    // there is no `Migrate`: serde carries the session across, up and (on revert) down.
    let mark = gateway.stderr_text().len();
    fixture.edit_all(
        "gateway/src/lib.rs",
        &[
            (
                "    pub notes: Vec<String>,",
                "    pub notes: Vec<String>,\n    pub nickname: Option<String>,\n    #[serde(default)]\n    pub visits: u64,",
            ),
            (
                "requests={} notes={}\",",
                "requests={} notes={} nickname={} visits={}\",",
            ),
            (
                "session.notes.join(\"|\")",
                "session.notes.join(\"|\"),\n            session.nickname.as_deref().unwrap_or(\"-\"),\n            session.visits",
            ),
            ("ok v1", "ok v2"),
            ("err v1", "err v2"),
        ],
    );
    wait_for_gateway_tool(
        &gateway,
        mark,
        "Migrated gateway::Session v1 -> v1: 1 value(s)",
    );
    assert_eq!(
        client.ask("get").unwrap(),
        "ok v2 user=ada requests=3 notes=hi nickname=- visits=0"
    );
    let mark = gateway.stderr_text().len();
    fixture.replace_file("gateway/src/lib.rs", &v1);
    wait_for_gateway_tool(
        &gateway,
        mark,
        "Migrated gateway::Session v1 -> v1: 1 value(s)",
    );
    assert_eq!(
        client.ask("get").unwrap(),
        "ok v1 user=ada requests=4 notes=hi"
    );
    a_field_removed_and_one_renamed_keep_the_session(&fixture, &gateway, &mut client);
}

/// A field removed and one renamed with an alias: the session keeps what both versions have.
fn a_field_removed_and_one_renamed_keep_the_session(
    fixture: &Fixture,
    gateway: &Gateway,
    client: &mut Connection,
) {
    let mark = gateway.stderr_text().len();
    fixture.edit_all(
        "gateway/src/lib.rs",
        &[
            ("    pub peer: String,\n", ""),
            (
                "pub fn open_session(peer: String)",
                "pub fn open_session(_peer: String)",
            ),
            ("        peer,\n", ""),
            (
                "    pub notes: Vec<String>,",
                "    #[serde(alias = \"notes\")]\n    pub memos: Vec<String>,",
            ),
            ("session.notes", "session.memos"),
            ("ok v1", "ok v3"),
            ("err v1", "err v3"),
        ],
    );
    wait_for_gateway_tool(
        gateway,
        mark,
        "Migrated gateway::Session v1 -> v1: 1 value(s)",
    );
    assert_eq!(
        client.ask("get").unwrap(),
        "ok v3 user=ada requests=5 notes=hi"
    );
    assert_eq!(client.ask("note there").unwrap(), "ok v3 notes=2");
    let said = gateway.stderr_text();
    assert!(
        !said.contains("Restarting") && !said.contains("version stayed"),
        "state changes are patched, not refused or restarted:\n{said}"
    );
}
