//! End to end: one patch file rolled out to three running instances of the same build, in
//! batches with a health command; a failing health check rolls the rollout back (exit code 6),
//! and a patch a target refuses is applied nowhere (exit code 5).

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use hotreload_tests::{locations, spawn_app, Fixture, PatchFile, Profile, RunningApp, ToolOutput};

/// One instance of the fixture app, started directly with its own control socket.
struct Instance {
    child: Child,
    socket: PathBuf,
    lines: Receiver<String>,
}

impl Instance {
    fn start(fixture: &Fixture, name: &str) -> Self {
        Self::start_with(fixture, name, &[])
    }

    /// [`Instance::start`] with more environment (`FIXTURE_TICK_MS`, the safe point timeout).
    fn start_with(fixture: &Fixture, name: &str, env: &[(&str, &str)]) -> Self {
        let socket = fixture.root().join(format!("{name}.sock"));
        let mut env: Vec<(&str, &std::ffi::OsStr)> = env
            .iter()
            .map(|(k, v)| (*k, std::ffi::OsStr::new(v)))
            .collect();
        env.push(("HOTRELOAD_CONTROL_SOCKET", socket.as_os_str()));
        // Its patches redirect entries of functions that are not `#[hot]` too (issue 14).
        env.push(("HOTRELOAD_ALLOW_ENTRY_REDIRECTS", "1".as_ref()));
        let (child, lines) = spawn_app(fixture, &env);
        let instance = Instance {
            child,
            socket,
            lines,
        };
        instance.wait_for("version=v1");
        instance
    }

    /// Waits for a line containing `text`; returns it.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{} never printed `{text}`", self.socket.display()));
            if line.contains(text) {
                return line;
            }
        }
    }

    /// The version it prints now (after the lines already printed).
    fn current_version(&self) -> String {
        while self.lines.try_recv().is_ok() {}
        let line = self.wait_for("version=");
        line.split_whitespace()
            .find_map(|field| field.strip_prefix("version="))
            .unwrap()
            .to_owned()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three instances of the same build, and rollouts to all of them.
struct Fleet<'a> {
    fixture: &'a Fixture,
    instances: Vec<Instance>,
    sockets: Vec<String>,
}

impl Fleet<'_> {
    /// `apply PATCH` to every instance, in a batch of one and then all, with `health`.
    fn apply(&self, patch: &Path, health: &str) -> ToolOutput {
        let mut args = vec!["apply", patch.to_str().unwrap(), "--batches", "1,100%"];
        for socket in &self.sockets {
            args.extend(["--target", socket.as_str()]);
        }
        args.extend(["--health", health]);
        self.fixture.tool(&args)
    }

    /// [`Fleet::apply`] by a tool that waits `reply_timeout_ms` for each answer.
    fn apply_waiting(&self, patch: &Path, health: &str, reply_timeout_ms: u64) -> ToolOutput {
        let mut args = vec!["apply", patch.to_str().unwrap(), "--batches", "1,100%"];
        for socket in &self.sockets {
            args.extend(["--target", socket.as_str()]);
        }
        args.extend(["--health", health]);
        let output = self
            .fixture
            .tool_command(&args)
            .env("HOTPATCH_REPLY_TIMEOUT_MS", reply_timeout_ms.to_string())
            .output()
            .expect("running cargo-hotpatch");
        ToolOutput::new(&args, output)
    }

    fn all_serve(&self, version: &str, why: &ToolOutput) {
        for instance in &self.instances {
            assert_eq!(instance.current_version(), version, "{}", why.describe());
        }
    }
}

#[test]
fn a_patch_rolls_out_in_batches_and_a_failing_health_check_rolls_it_back() {
    let fixture = Fixture::new(locations!(), Profile::Dev);
    // `run` builds the host and records the base; the instances run that same binary.
    let app = RunningApp::start(&fixture);
    drop(app);
    let instances: Vec<Instance> = ["a", "b", "c"]
        .iter()
        .map(|name| Instance::start(&fixture, name))
        .collect();
    let sockets = instances
        .iter()
        .map(|i| i.socket.display().to_string())
        .collect();
    let fleet = Fleet {
        fixture: &fixture,
        instances,
        sockets,
    };
    v2_rolls_out_batch_by_batch(&fleet);
    let v3 = a_failing_health_check_rolls_v3_back(&fleet);
    a_patch_for_another_build_is_applied_nowhere(&fleet, &v3);
    drop(fleet);
    answers_that_come_late_are_resolved_by_asking(&fixture, &v3);
}

/// A fleet of the given instances.
fn fleet_of(fixture: &Fixture, instances: Vec<Instance>) -> Fleet<'_> {
    let sockets = instances
        .iter()
        .map(|i| i.socket.display().to_string())
        .collect();
    Fleet {
        fixture,
        instances,
        sockets,
    }
}

/// The tool waits 300 ms for each answer, less than the targets' commits take: it asks each
/// target what happened instead of guessing. A commit that succeeds late counts as applied; one
/// that the process gives up later is known not applied, and only then is the rest rolled back.
fn answers_that_come_late_are_resolved_by_asking(fixture: &Fixture, v3: &Path) {
    // Its next safe point is 4 s after its first line: the commit waits that long.
    let slow = Instance::start_with(
        fixture,
        "slow",
        &[
            ("FIXTURE_TICK_MS", "4000"),
            ("HOTRELOAD_SAFE_POINT_TIMEOUT_MS", "20000"),
        ],
    );
    let fleet = fleet_of(fixture, vec![slow, Instance::start(fixture, "fast")]);
    let late = fleet.apply_waiting(v3, "true", 300).success();
    assert!(
        late.stderr.contains("asking it whether patch") && late.stderr.contains("shows patch"),
        "the late answer is resolved by asking the process: {}",
        late.describe()
    );
    fleet.all_serve("v3", &late);
    drop(fleet);

    // Its next safe point is 30 s away and it waits 1 s for it: it gives the commit up.
    let stubborn = Instance::start_with(
        fixture,
        "stubborn",
        &[
            ("FIXTURE_TICK_MS", "30000"),
            ("HOTRELOAD_SAFE_POINT_TIMEOUT_MS", "1000"),
        ],
    );
    let fleet = fleet_of(fixture, vec![Instance::start(fixture, "first"), stubborn]);
    let refused = fleet.apply_waiting(v3, "true", 300).exit_code(6);
    assert!(
        refused.stderr.contains("shows patch") && refused.stderr.contains("not applied"),
        "the target's status says the patch was not applied: {}",
        refused.describe()
    );
    assert!(
        refused.stdout.contains("rolled back"),
        "then, knowing it, the rollout rolls the first target back: {}",
        refused.describe()
    );
    assert_eq!(
        fleet.instances[0].current_version(),
        "v1",
        "{}",
        refused.describe()
    );
    let status = fixture
        .tool(&[
            "status",
            "--message-format",
            "json",
            "--target",
            &fleet.sockets[1],
        ])
        .success();
    let status: hotreload_tests::StatusReport = serde_json::from_str(status.stdout.trim()).unwrap();
    assert!(
        status.patches.iter().all(|p| !p.active),
        "the stubborn target runs no patch: {:?}",
        status.patches
    );
}

fn v2_rolls_out_batch_by_batch(fleet: &Fleet) {
    let fixture = fleet.fixture;
    fixture.edit("logic/src/lib.rs", "\"v1\"", "\"v2\"");
    fixture.edit("logic/src/lib.rs", "failure from v1", "failure from v2");
    let v2 = fixture.build_patch("v2.hotpatch");
    // The health command sees which targets are patched so far.
    let health_log = fixture.root().join("health.log");
    let healthy = format!("echo \"$HOTPATCH_TARGETS\" >> {}", health_log.display());
    let rolled = fleet.apply(&v2, &healthy).success();
    fleet.all_serve("v2", &rolled);
    let health_runs = std::fs::read_to_string(&health_log).unwrap();
    let runs: Vec<&str> = health_runs.lines().collect();
    assert_eq!(runs.len(), 2, "one health check per batch: {health_runs}");
    assert_eq!(runs[0], fleet.sockets[0], "the first batch is one target");
    assert_eq!(
        runs[1],
        fleet.sockets.join(","),
        "the second batch is all of them"
    );
    assert!(
        rolled.stdout.contains("applied"),
        "a summary table: {}",
        rolled.describe()
    );
}

/// v3 with a failing health check: the first batch is applied, then rolled back.
fn a_failing_health_check_rolls_v3_back(fleet: &Fleet) -> PathBuf {
    let fixture = fleet.fixture;
    fixture.edit("logic/src/lib.rs", "\"v2\"", "\"v3\"");
    fixture.edit("logic/src/lib.rs", "failure from v2", "failure from v3");
    let v3 = fixture.build_patch("v3.hotpatch");
    // Exit code 6: the rollout failed and what it patched was rolled back.
    let failed = fleet.apply(&v3, "exit 1").exit_code(6);
    assert!(
        failed.stdout.contains("rolled back") && failed.stdout.contains("untouched"),
        "the summary says what was rolled back and what was never touched: {}",
        failed.describe()
    );
    fleet.all_serve("v2", &failed);
    v3
}

/// A patch one target would refuse (another build) is applied nowhere.
fn a_patch_for_another_build_is_applied_nowhere(fleet: &Fleet, v3: &Path) {
    let bytes = std::fs::read(v3).unwrap();
    let mut foreign = PatchFile::parse(&bytes).unwrap();
    foreign.manifest.base.build_id = "00".repeat(20);
    let foreign = PatchFile::new(foreign.manifest, foreign.library);
    let foreign_path = fleet.fixture.root().join("foreign.hotpatch");
    std::fs::write(&foreign_path, foreign.to_bytes()).unwrap();
    // `check` of it on one target: exit code 5, and with `--message-format json` a final record
    // naming the kind.
    let checked = fleet
        .fixture
        .tool(&[
            "check",
            foreign_path.to_str().unwrap(),
            "--message-format",
            "json",
            "--target",
            &fleet.sockets[1],
        ])
        .target_refused();
    assert!(
        checked.stderr.contains("refused at step `base_build`"),
        "{}",
        checked.describe()
    );
    // The rollout is refused at its check: exit code 5, nothing applied.
    let refused = fleet.apply(&foreign_path, "true").exit_code(5);
    assert!(
        refused.stderr.contains("nothing was applied"),
        "{}",
        refused.describe()
    );
    fleet.all_serve("v2", &refused);
}
