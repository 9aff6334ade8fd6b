//! End to end: a process started with `HOTRELOAD_PATCH_DIR` applies the approved patches for its
//! own build before it serves; a patch after which it crashed is quarantined at the next start.

use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use hotreload_tests::{locations, spawn_app, Fixture, Profile, RunningApp};

/// Starts the fixture's built app with a patch directory; returns its first line (if any) and,
/// if it ended by itself within a few seconds, how.
fn start_app(fixture: &Fixture, patch_dir: &Path) -> (Option<String>, Option<ExitStatus>) {
    let (mut app, lines) = spawn_app(fixture, &[("HOTRELOAD_PATCH_DIR", patch_dir)]);
    let first = lines.recv_timeout(Duration::from_secs(10)).ok();
    let mut ended = None;
    for _ in 0..40 {
        if let Ok(Some(status)) = app.try_wait() {
            ended = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if ended.is_none() {
        let _ = app.kill();
        let _ = app.wait();
    }
    (first, ended)
}

#[test]
fn approved_patches_apply_at_start_and_a_crashing_one_is_quarantined() {
    let fixture = Fixture::new(locations!(), Profile::Dev);
    let patch_dir = fixture.root().join("approved");
    std::fs::create_dir_all(&patch_dir).unwrap();

    // Build the host (through `run`), then two patches of it: v2, and one whose `fail` aborts.
    let mut app = RunningApp::start(&fixture);
    app.wait_for_version("v1");
    fixture.edit("logic/src/lib.rs", "\"v1\"", "\"v2\"");
    fixture.edit("logic/src/lib.rs", "failure from v1", "failure from v2");
    let v2 = fixture.build_patch("v2.hotpatch");
    fixture.edit(
        "logic/src/lib.rs",
        "panic!(\"failure from v2\")",
        "std::process::abort()",
    );
    let crashing = fixture.build_patch("crashing.hotpatch");
    drop(app);

    // A patch for this build applies before the first line is printed.
    std::fs::copy(&v2, patch_dir.join("v2.hotpatch")).unwrap();
    let (first, _) = start_app(&fixture, &patch_dir);
    let first = first.expect("the app prints its first tick");
    assert!(
        first.contains("version=v2") && first.contains("failure from v2"),
        "the approved patch ran from the first tick: {first}"
    );

    // A patch after which the process crashes: the process dies...
    std::fs::remove_file(patch_dir.join("v2.hotpatch")).unwrap();
    let approved = patch_dir.join("crashing.hotpatch");
    std::fs::copy(&crashing, &approved).unwrap();
    let (_, ended) = start_app(&fixture, &patch_dir);
    let ended = ended.expect("the app crashed");
    assert!(
        !ended.success(),
        "the crashing patch killed the app: {ended:?}"
    );

    // ... and at the next start it is quarantined, and the app runs the base's code.
    let (first, ended) = start_app(&fixture, &patch_dir);
    assert!(ended.is_none(), "the app keeps running: {ended:?}");
    let first = first.expect("the app prints its first tick");
    assert!(
        first.contains("version=v1"),
        "the base's code runs: {first}"
    );
    assert!(
        !approved.exists(),
        "the crashing patch is no longer approved"
    );
    assert!(
        patch_dir.join("crashing.hotpatch.quarantined").exists(),
        "the crashing patch is kept aside, renamed"
    );
}
