//! The fixture workspace's `Cargo.lock` covers everything it builds, so the end-to-end tests
//! resolve nothing against the registry: no network needed, no time lost. A dependency added to
//! the runtime without refreshing that lock file fails here, with the command that refreshes it.

mod common;

use std::process::Command;

use common::{Fixture, Profile};

#[test]
fn the_fixture_lock_file_is_complete() {
    let fixture = Fixture::new(Profile::Dev);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--locked",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(fixture.manifest())
        .output()
        .expect("running cargo metadata");
    assert!(
        output.status.success(),
        "the fixture's Cargo.lock is out of date; refresh it with `cargo metadata --manifest-path cargo-hotpatch/tests/fixtures/patchable/Cargo.toml --format-version 1 > /dev/null` and commit it:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
