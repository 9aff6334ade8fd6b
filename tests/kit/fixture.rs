//! Fixture workspaces: a copy of `tests/fixtures/patchable` or of an example app in a
//! temporary directory, the target directory its builds share with the other runs of the same
//! kind (held through [`TargetLock`] while the fixture lives), and edits of its sources.

use std::path::{Path, PathBuf};

use crate::lock::TargetLock;
use crate::{Locations, Profile};

/// A copy of a fixture workspace in a temporary directory, with its target directory held.
pub struct Fixture {
    dir: tempfile::TempDir,
    pub(crate) target: PathBuf,
    pub(crate) profile: Profile,
    /// The package `run` and `build` name with `-p`, whose binary has the same name.
    pub(crate) package: &'static str,
    /// The tool under test, canonical: the host build names itself (`current_exe`) as
    /// `RUSTC_WORKSPACE_WRAPPER`, so a `cargo build` given this path builds in the same
    /// environment as the tool's host build.
    pub(crate) tool: PathBuf,
    /// Environment for the tool, and so for the app it starts.
    pub(crate) env: Vec<(String, String)>,
    /// Held from before the copy is made: a copy older than the last build in the target
    /// directory would look fresh to cargo, which would not rebuild (nor capture) its crates.
    _locks: Vec<TargetLock>,
}

impl Fixture {
    /// A copy of `tests/fixtures/patchable`, built in the profile's target directory.
    pub fn new(at: Locations, profile: Profile) -> Self {
        Self::patchable(at, profile, "hotpatch-e2e-", profile.target_dir())
    }

    /// A copy of `tests/fixtures/patchable` in a temporary directory named `prefix...`, built in
    /// `$CARGO_TARGET_TMPDIR/TARGET_DIR` (a benchmark's own: control sockets are their run's).
    pub fn patchable(at: Locations, profile: Profile, prefix: &str, target_dir: &str) -> Self {
        let locks = lock_target(at, profile, target_dir);
        let dir = temporary_dir(prefix);
        copy_patchable_fixture(dir.path());
        Self::create(at, dir, locks, profile, target_dir, "app")
    }

    /// A copy of `tests/fixtures/entry` (no `#[hot]` anywhere: what entry redirection patches),
    /// built in the profile's target directory like the patchable fixture, sharing its
    /// dependencies' builds.
    pub fn entry(at: Locations, profile: Profile) -> Self {
        let locks = lock_target(at, profile, profile.target_dir());
        let dir = temporary_dir("hotpatch-entry-");
        copy_fixture("entry", dir.path());
        // The same versions of the runtime's dependencies as the patchable fixture's.
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/patchable/Cargo.lock"),
            dir.path().join("Cargo.lock"),
        )
        .expect("copying Cargo.lock");
        Self::create(at, dir, locks, profile, profile.target_dir(), "entryapp")
    }

    /// A workspace of its own in a temporary directory holding a copy of `examples/gateway`,
    /// built into the same target directory as the fixture of `profile`.
    pub fn gateway(at: Locations, profile: Profile) -> Self {
        let mut fixture = Self::example(at, profile, "gateway", "hotpatch-gw-");
        // Under `run` and `watch`, on a free port: it says which on its first line.
        fixture.set_env("GATEWAY_ADDR", "127.0.0.1:0");
        fixture
    }

    /// A workspace of its own holding a copy of `examples/depot` (the realistic service: tokio,
    /// tracing, serde), built into the same target directory as the fixture of `profile`. It
    /// listens on a free port (its first line says which) and keeps no snapshot unless the test
    /// sets `DEPOT_SNAPSHOT`.
    pub fn depot(at: Locations, profile: Profile) -> Self {
        let mut fixture = Self::example(at, profile, "depot", "hotpatch-depot-");
        fixture.set_env("DEPOT_LISTEN", "127.0.0.1:0");
        fixture.set_env("DEPOT_SNAPSHOT", "");
        fixture
    }

    /// A workspace of its own holding a copy of `examples/snake` (the macroquad game), built
    /// into the same target directory as the fixture of `profile`. It reports its numbers and the
    /// colour of its window's corner once a second (`SNAKE_REPORT`), drawn by Mesa's software
    /// renderer on the display the test gives it.
    pub fn snake(at: Locations, profile: Profile, display: &str) -> Self {
        let mut fixture = Self::example(at, profile, "snake", "hotpatch-snake-");
        fixture.set_env("DISPLAY", display);
        fixture.set_env("LIBGL_ALWAYS_SOFTWARE", "1");
        // Mesa's threads block every signal, so the stop that writes entry redirects checks
        // them asleep instead of parking them (the runtime's `docs::entry_redirects`). Its
        // disk-cache queue sleeps; llvmpipe's workers render every frame, and a running thread
        // can never be proven idle, so a patch meeting them retries and may be refused.
        // Rendering on the game's own thread avoids them.
        fixture.set_env("LP_NUM_THREADS", "0");
        fixture.set_env("SNAKE_REPORT", "1");
        fixture
    }

    /// A workspace in a temporary directory named `prefix...` holding a copy of
    /// `examples/NAME` as its one member, with the workspace dependencies the examples use.
    fn example(at: Locations, profile: Profile, name: &'static str, prefix: &str) -> Self {
        let locks = lock_target(at, profile, profile.target_dir());
        let dir = temporary_dir(prefix);
        copy_dir(
            &workspace_root().join("examples").join(name),
            &dir.path().join(name),
        );
        // The workspace's lock file pins the same versions of tokio, serde and tracing.
        std::fs::copy(
            workspace_root().join("Cargo.lock"),
            dir.path().join("Cargo.lock"),
        )
        .expect("copying Cargo.lock");
        std::fs::write(
            dir.path().join("Cargo.toml"),
            format!(
                r#"[workspace]
resolver = "2"
members = ["{name}"]

[workspace.dependencies]
hotreload-runtime = {{ path = {:?} }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"
thiserror = "2"
tokio = {{ version = "1", features = {TOKIO_FEATURES:?} }}
tracing = "0.1"
tracing-subscriber = {{ version = "0.3", default-features = false, features = ["fmt", "std"] }}

# As the patchable fixture sharing this target directory does (see the README).
[profile.dev.build-override]
opt-level = 3

# As the README tells users (the layout check reads it): release builds keep debug information.
[profile.release]
debug = true
"#,
                runtime_path()
            ),
        )
        .expect("writing Cargo.toml");
        Self::create(at, dir, locks, profile, profile.target_dir(), name)
    }

    fn create(
        at: Locations,
        dir: tempfile::TempDir,
        locks: Vec<TargetLock>,
        profile: Profile,
        target_dir: &str,
        package: &'static str,
    ) -> Self {
        let target = Path::new(at.scratch).join(target_dir);
        let tool = std::fs::canonicalize(at.tool).expect("the cargo-hotpatch binary under test");
        let fixture = Fixture {
            _locks: locks,
            dir,
            target,
            profile,
            package,
            tool,
            env: Vec::new(),
        };
        let socket = fixture.socket();
        assert!(
            socket.as_os_str().len() < 100,
            "the control socket path {} is {} bytes long; Unix socket paths must stay under 108",
            socket.display(),
            socket.as_os_str().len()
        );
        fixture
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The package `run` and `build` use.
    pub fn package(&self) -> &'static str {
        self.package
    }

    pub fn manifest(&self) -> PathBuf {
        self.root().join("Cargo.toml")
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The target directory of the fixture's builds.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The control socket `cargo hotpatch run` gives the app.
    pub fn socket(&self) -> PathBuf {
        self.target
            .join("hotpatch")
            .join(self.profile.name())
            .join("control.sock")
    }

    /// Sets an environment variable for the tool's commands from now on (and so for the app).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// A source file of the fixture.
    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.root().join(file)).expect("a fixture source file")
    }

    /// Replaces a whole source file of the fixture with `contents`.
    pub fn replace_file(&self, file: &str, contents: &str) {
        std::fs::write(self.root().join(file), contents).expect("writing a fixture source file");
    }

    /// Replaces `from` (which must occur) by `to` in a fixture source file.
    pub fn edit(&self, file: &str, from: &str, to: &str) {
        self.edit_all(file, &[(from, to)]);
    }

    /// Makes every `(from, to)` replacement in `file` in one write: one save, as an editor makes
    /// it (two writes in a row are two saves, which `watch` may patch one by one).
    pub fn edit_all(&self, file: &str, edits: &[(&str, &str)]) {
        let mut text = self.read(file);
        for (from, to) in edits {
            assert!(
                text.contains(from),
                "{file} does not contain `{from}`:\n{text}"
            );
            text = text.replace(from, to);
        }
        self.replace_file(file, &text);
    }
}

/// tokio's features in an example's fixture workspace: every feature any example enables, so the
/// fixtures of all examples share one tokio build in their target directory (features unify per
/// workspace, and each fixture is a workspace of its own).
const TOKIO_FEATURES: [&str; 7] = [
    "rt-multi-thread",
    "macros",
    "time",
    "net",
    "io-util",
    "sync",
    "signal",
];

/// Holds `target_dir` in `at`'s scratch directory, and for a release fixture the dev fixtures'
/// directory first: its first build (tokio at `-O3`) would otherwise compete for the cores with a
/// dev test's first build, whose bound assumes it has them. (Always the dev lock first, so two
/// holders never wait on each other.)
fn lock_target(at: Locations, profile: Profile, target_dir: &str) -> Vec<TargetLock> {
    let scratch = Path::new(at.scratch);
    let mut locks = Vec::new();
    if profile == Profile::Release {
        locks.push(TargetLock::acquire(
            &scratch.join(Profile::Dev.target_dir()),
        ));
    }
    locks.push(TargetLock::acquire(&scratch.join(target_dir)));
    locks
}

fn temporary_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("a temporary directory")
}

/// A copy of `tests/fixtures/patchable` with no target directory: for looking at the fixture,
/// not building it.
pub fn patchable_copy() -> tempfile::TempDir {
    let dir = temporary_dir("hotpatch-fixture-");
    copy_patchable_fixture(dir.path());
    dir
}

/// The workspace's root directory.
fn workspace_root() -> PathBuf {
    std::path::absolute(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .expect("the workspace's absolute path")
}

/// Copies `tests/fixtures/patchable` into `dir`, naming the runtime by its absolute path there.
fn copy_patchable_fixture(dir: &Path) {
    copy_fixture("patchable", dir);
}

/// Copies `tests/fixtures/NAME` into `dir`, naming the runtime by its absolute path there.
fn copy_fixture(name: &str, dir: &Path) {
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name),
        dir,
    );
    let runtime = runtime_path();
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("the fixture's Cargo.toml");
    let relative = "../../../hotreload-runtime";
    assert!(
        text.contains(relative),
        "the fixture's Cargo.toml no longer names the runtime as `{relative}`:\n{text}"
    );
    std::fs::write(&manifest, text.replace(relative, &runtime)).expect("writing Cargo.toml");
}

/// The runtime crate's absolute path.
fn runtime_path() -> String {
    workspace_root()
        .join("hotreload-runtime")
        .to_str()
        .expect("a UTF-8 path to the runtime")
        .to_owned()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creating a directory");
    for entry in std::fs::read_dir(from).expect("reading the fixture") {
        let entry = entry.expect("a directory entry");
        let path = entry.path();
        if path.file_name().is_some_and(|name| name == "target") {
            continue;
        }
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).expect("copying a fixture file");
        }
    }
}
