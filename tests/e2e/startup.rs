//! End to end: a process started with `HOTRELOAD_PATCH_DIR` applies the approved patches for its
//! own build before it serves; an ordinary restart or a second replica keeps them; a patch after
//! which a process crashed is quarantined at the next start, loudly.

use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use hotreload_tests::{
    locations, patch_id, read_lines, Fixture, Profile, RunningApp, StatusReport,
};

/// The fixture's built app started with a patch directory, a control socket and an audit log;
/// its stderr goes to a file.
struct StartedApp {
    child: Child,
    lines: Receiver<String>,
    socket: PathBuf,
    stderr: PathBuf,
}

impl StartedApp {
    fn start(fixture: &Fixture, patch_dir: &Path, name: &str) -> StartedApp {
        let socket = fixture.root().join(format!("{name}.sock"));
        let stderr = fixture.root().join(format!("{name}.stderr"));
        let mut child = Command::new(fixture.target().join("debug").join(fixture.package()))
            .env("HOTRELOAD_PATCH_DIR", patch_dir)
            // Its patches redirect entries of functions that are not `#[hot]` too (issue 14).
            .env("HOTRELOAD_ALLOW_ENTRY_REDIRECTS", "1")
            .env("HOTRELOAD_CONTROL_SOCKET", &socket)
            .env("HOTRELOAD_AUDIT_LOG", fixture.root().join("audit.log"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("starting the app");
        let lines = read_lines(child.stdout.take().unwrap());
        StartedApp {
            child,
            lines,
            socket,
            stderr,
        }
    }

    fn first_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("the app prints its first tick")
    }

    /// How it ended, if it did within a few seconds.
    fn ended(&mut self) -> Option<ExitStatus> {
        for _ in 0..60 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Stops it with SIGTERM, as a service manager does, and waits for it.
    fn terminate(mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }

    fn status(&self, fixture: &Fixture) -> StatusReport {
        let output = fixture
            .tool(&[
                "status",
                "--message-format",
                "json",
                "--target",
                self.socket.to_str().unwrap(),
            ])
            .success();
        serde_json::from_str(output.stdout.trim()).expect("a StatusReport")
    }
}

impl Drop for StartedApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn approved_patches_survive_restarts_and_replicas_and_a_crashing_one_is_quarantined() {
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

    std::fs::copy(&v2, patch_dir.join("v2.hotpatch")).unwrap();
    restarts_and_replicas_keep_the_patch(&fixture, &patch_dir);

    std::fs::remove_file(patch_dir.join("v2.hotpatch")).unwrap();
    std::fs::copy(&crashing, patch_dir.join("crashing.hotpatch")).unwrap();
    a_crash_quarantines_the_patch_loudly(&fixture, &patch_dir, &patch_id(&crashing));
}

/// A patch for this build applies before the first line; a SIGTERM restart within the probation
/// keeps it, and two replicas started half a second apart on the same directory both run it.
fn restarts_and_replicas_keep_the_patch(fixture: &Fixture, patch_dir: &Path) {
    let served_v2 = |line: String, who: &str| {
        assert!(
            line.contains("version=v2") && line.contains("failure from v2"),
            "{who} ran the approved patch from its first tick: {line}"
        );
    };
    let first = StartedApp::start(fixture, patch_dir, "first");
    served_v2(first.first_line(), "the first start");
    let stopped = first.terminate();
    assert_eq!(stopped.signal(), Some(libc::SIGTERM), "stopped by SIGTERM");

    let restarted = StartedApp::start(fixture, patch_dir, "restarted");
    served_v2(
        restarted.first_line(),
        "a restart after SIGTERM within the probation",
    );
    assert!(patch_dir.join("v2.hotpatch").exists(), "v2 stays approved");
    drop(restarted);

    let replica_a = StartedApp::start(fixture, patch_dir, "replica-a");
    std::thread::sleep(Duration::from_millis(500));
    let replica_b = StartedApp::start(fixture, patch_dir, "replica-b");
    served_v2(replica_a.first_line(), "replica a");
    served_v2(replica_b.first_line(), "replica b, started 0.5 s after a");
    assert!(
        replica_b.status(fixture).quarantined.is_empty(),
        "nothing quarantined"
    );
    assert!(patch_dir.join("v2.hotpatch").exists(), "v2 stays approved");
}

/// A patch after which the process dies of SIGABRT is quarantined at the next start: the app
/// runs the base's code and says so on stderr, in the audit log and in `status`.
fn a_crash_quarantines_the_patch_loudly(fixture: &Fixture, patch_dir: &Path, crashing_id: &str) {
    let approved = patch_dir.join("crashing.hotpatch");
    let mut crashed = StartedApp::start(fixture, patch_dir, "crashed");
    let ended = crashed.ended().expect("the crashing patch kills the app");
    assert_eq!(
        ended.signal(),
        Some(libc::SIGABRT),
        "the app aborted: {ended:?}"
    );

    let mut next = StartedApp::start(fixture, patch_dir, "after-crash");
    let first = next.first_line();
    assert!(next.ended().is_none(), "the app keeps running");
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
    let stderr = std::fs::read_to_string(&next.stderr).unwrap();
    assert!(
        stderr.contains("QUARANTINED") && stderr.contains(&crashing_id[..12]),
        "the quarantine is on stderr: {stderr}"
    );
    let status = next.status(fixture);
    assert_eq!(
        status.quarantined.len(),
        1,
        "status: {:?}",
        status.quarantined
    );
    assert_eq!(status.quarantined[0].id, crashing_id);
    assert!(
        status.quarantined[0].reason.contains("signal 6"),
        "status names the crash: {}",
        status.quarantined[0].reason
    );
    let audit = std::fs::read_to_string(fixture.root().join("audit.log")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"quarantine\"") && l.contains(crashing_id)),
        "the audit log records the quarantine: {audit}"
    );
}
