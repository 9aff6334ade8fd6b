//! End to end: a self-contained base record (`run --record DIR`) lets another checkout, with
//! another (empty) target directory, build a patch for the running build: as when a fix is built
//! on a build machine against the record kept with a deployed release.

use std::process::Command;

use hotreload_tests::{copy_dir, locations, Fixture, Profile, RunningApp};

#[test]
fn a_patch_built_elsewhere_against_a_kept_record_applies_to_the_deployed_build() {
    let fixture = Fixture::new(locations!(), Profile::Dev);
    let record = tempfile::tempdir().unwrap();
    let record_dir = record.path().join("release-1.0");
    let mut app =
        RunningApp::start_with_args(&fixture, "run", &["--record", record_dir.to_str().unwrap()]);
    app.wait_for_version("v1");
    assert!(record_dir.join("base.json").is_file());
    assert!(record_dir.join("target/deps").is_dir());

    // Another checkout of the same sources, somewhere else, with its own empty target dir.
    let elsewhere = tempfile::tempdir().unwrap();
    let checkout = elsewhere.path().join("checkout");
    copy_dir(fixture.root(), &checkout);
    let lib = checkout.join("logic/src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &lib,
        text.replace("\"v1\"", "\"v2\"")
            .replace("failure from v1", "failure from v2"),
    )
    .unwrap();
    let patch = elsewhere.path().join("fix.hotpatch");
    let output = Command::new(fixture.tool_path())
        .args(["hotpatch", "build", "--manifest-path"])
        .arg(checkout.join("Cargo.toml"))
        .args(["-p", "app", "--base"])
        .arg(&record_dir)
        .arg("-o")
        .arg(&patch)
        .env("CARGO_TARGET_DIR", elsewhere.path().join("empty-target"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "build against the kept record: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !elsewhere.path().join("empty-target/debug").exists(),
        "nothing was built by cargo in the other target dir"
    );

    // The deployed process takes it.
    fixture.apply(&patch).success();
    app.wait_for_version("v2");
}
