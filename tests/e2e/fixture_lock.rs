//! The fixture workspace's `Cargo.lock` covers everything it builds, so the end-to-end tests
//! resolve nothing against the registry: no network needed, no time lost. A dependency added to
//! the runtime without refreshing that lock file fails here, with the command that refreshes it.

use std::process::Command;

use hotreload_tests::patchable_copy;

#[test]
fn the_fixture_lock_file_is_complete() {
    // A copy, not built: no target directory to wait for.
    let fixture = patchable_copy();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--locked",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(fixture.path().join("Cargo.toml"))
        .output()
        .expect("running cargo metadata");
    assert!(
        output.status.success(),
        "the fixture's Cargo.lock is out of date; refresh it with `cargo metadata --manifest-path tests/fixtures/patchable/Cargo.toml --format-version 1 > /dev/null` and commit it:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
