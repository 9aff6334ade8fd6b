//! End to end: `cargo hotpatch run` the fixture workspace `tests/fixtures/patchable`, then build,
//! apply, stack, inspect and roll back patches of the running app, and check what is refused.
//!
//! The fixture app prints one line per 50 ms tick:
//! `tick=N version=vX steps=N spawned=N count=N caught=[failure from vX]`.
//! Every line read is checked against the one before: the host's tick counter and the shared
//! `STEPS`/`PRIVATE_COUNT` statics advance by exactly one, so a restarted app, a forked static or
//! a missed tick fails the test at once.
//!
//! Fixture builds share one target directory (`$CARGO_TARGET_TMPDIR/fixture-target`) so tokio and
//! the runtime compile once; its `hotpatch/dev` state (base record, control socket) is shared too,
//! so the tests of this file take [`FIXTURE_TARGET`] and run one at a time.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hotreload_runtime::control::protocol::{Reply, Request, Response, StatusReport};
use hotreload_runtime::patch_file::PatchFile;

/// The first `run` may build tokio and the runtime from scratch.
const FIRST_BUILD: Duration = Duration::from_secs(300);
/// How long a committed patch or rollback may take to show in the app's output.
const NEW_VERSION: Duration = Duration::from_secs(30);
/// How long the app may take to print a few more ticks.
const MORE_TICKS: Duration = Duration::from_secs(30);

/// Held by each test: they share the fixture target directory and its control socket.
static FIXTURE_TARGET: Mutex<()> = Mutex::new(());

fn lock_fixture_target() -> MutexGuard<'static, ()> {
    FIXTURE_TARGET
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------------
// The fixture workspace and the tool.

/// A copy of the fixture workspace in a temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
    target: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::Builder::new()
            .prefix("hotpatch-e2e-")
            .tempdir()
            .expect("a temporary directory");
        copy_dir(&manifest_dir.join("tests/fixtures/patchable"), dir.path());
        let runtime = std::path::absolute(manifest_dir.join("../hotreload-runtime"))
            .expect("the runtime's absolute path");
        let runtime = runtime.to_str().expect("a UTF-8 path to the runtime");
        let manifest = dir.path().join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).expect("the fixture's Cargo.toml");
        let relative = "../../../../hotreload-runtime";
        assert!(
            text.contains(relative),
            "the fixture's Cargo.toml no longer names the runtime as `{relative}`:\n{text}"
        );
        std::fs::write(&manifest, text.replace(relative, runtime)).expect("writing Cargo.toml");

        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixture-target");
        let fixture = Fixture { dir, target };
        let socket = fixture.socket();
        assert!(
            socket.as_os_str().len() < 100,
            "the control socket path {} is {} bytes long; Unix socket paths must stay under 108",
            socket.display(),
            socket.as_os_str().len()
        );
        fixture
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn manifest(&self) -> PathBuf {
        self.root().join("Cargo.toml")
    }

    /// The control socket `cargo hotpatch run` gives the app.
    fn socket(&self) -> PathBuf {
        self.target.join("hotpatch/dev/control.sock")
    }

    /// Replaces `from` (which must occur) by `to` in a fixture source file.
    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.root().join(file);
        let text = std::fs::read_to_string(&path).expect("a fixture source file");
        assert!(
            text.contains(from),
            "{file} does not contain `{from}`:\n{text}"
        );
        std::fs::write(&path, text.replace(from, to)).expect("writing a fixture source file");
    }

    /// `cargo-hotpatch hotpatch ARGS`, run to completion.
    fn tool(&self, args: &[&str]) -> ToolOutput {
        let output = self
            .tool_command(args)
            .stdin(Stdio::null())
            .output()
            .expect("running cargo-hotpatch");
        ToolOutput::new(args, output)
    }

    fn tool_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cargo-hotpatch"));
        command
            .arg("hotpatch")
            .args(args)
            .current_dir(self.root())
            .env("CARGO_TARGET_DIR", &self.target);
        command
    }

    /// `build` of the current sources against the running base into `file`; must succeed.
    fn build_patch(&self, file: &str) -> PathBuf {
        let path = self.root().join(file);
        self.tool(&[
            "build",
            "--manifest-path",
            self.manifest().to_str().unwrap(),
            "-p",
            "app",
            "-o",
            path.to_str().unwrap(),
        ])
        .success();
        assert!(path.is_file(), "`build` wrote no {}", path.display());
        path
    }

    /// `build` that must fail; returns its output.
    fn build_refused(&self, file: &str) -> ToolOutput {
        let path = self.root().join(file);
        let output = self
            .tool(&[
                "build",
                "--manifest-path",
                self.manifest().to_str().unwrap(),
                "-p",
                "app",
                "-o",
                path.to_str().unwrap(),
            ])
            .failure();
        assert!(
            !path.exists(),
            "a refused `build` still wrote {}",
            path.display()
        );
        output
    }

    fn apply(&self, patch: &Path) -> ToolOutput {
        self.tool(&[
            "apply",
            patch.to_str().unwrap(),
            "--target",
            self.socket().to_str().unwrap(),
        ])
    }

    fn rollback(&self) -> ToolOutput {
        self.tool(&["rollback", "--target", self.socket().to_str().unwrap()])
    }

    fn status(&self) -> StatusReport {
        let output = self
            .tool(&[
                "status",
                "--message-format",
                "json",
                "--target",
                self.socket().to_str().unwrap(),
            ])
            .success();
        serde_json::from_str(output.stdout.trim()).unwrap_or_else(|error| {
            panic!(
                "`status --message-format json` printed no StatusReport ({error}):\n{}",
                output.stdout
            )
        })
    }
}

fn copy_dir(from: &Path, to: &Path) {
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

/// What a finished `cargo-hotpatch` printed.
struct ToolOutput {
    command: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl ToolOutput {
    fn new(args: &[&str], output: Output) -> Self {
        ToolOutput {
            command: format!("cargo hotpatch {}", args.join(" ")),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "`{}` exited with {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "expected success: {}", self.describe());
        self
    }

    fn failure(self) -> Self {
        assert!(
            self.code.is_some_and(|code| code != 0),
            "expected a non-zero exit: {}",
            self.describe()
        );
        self
    }

    /// Asserts that stderr mentions each of `needles`.
    fn stderr_names(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "expected stderr to mention `{needle}`: {}",
                self.describe()
            );
        }
        self
    }
}

// ---------------------------------------------------------------------------------------------
// The running app.

/// One line of the app's output.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tick {
    tick: u64,
    version: String,
    steps: u64,
    spawned: u64,
    count: u64,
    here: u64,
    caught: String,
}

impl Tick {
    fn parse(line: &str) -> Option<Tick> {
        let (fields, caught) = line.split_once(" caught=[")?;
        let caught = caught.strip_suffix(']')?.to_owned();
        let mut tick = None;
        let mut version = None;
        let mut steps = None;
        let mut spawned = None;
        let mut count = None;
        let mut here = None;
        for field in fields.split_whitespace() {
            let (key, value) = field.split_once('=')?;
            match key {
                "tick" => tick = value.parse().ok(),
                "version" => version = Some(value.to_owned()),
                "steps" => steps = value.parse().ok(),
                "spawned" => spawned = value.parse().ok(),
                "count" => count = value.parse().ok(),
                "here" => here = value.parse().ok(),
                // Fields this test does not check.
                _ => {}
            }
        }
        Some(Tick {
            tick: tick?,
            version: version?,
            steps: steps?,
            spawned: spawned?,
            count: count?,
            here: here?,
            caught,
        })
    }
}

/// `cargo hotpatch run -p app` with its app; both are killed when this is dropped.
struct RunningApp {
    tool: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    socket: PathBuf,
    /// The app's pid, from `hello`.
    pid: Option<u32>,
    /// The last line read.
    last: Option<Tick>,
    /// What `counter::count` may add per tick (its private static), and `perthread::count_here`
    /// (its private thread-local): 1 until a test patches them.
    count_steps: Vec<u64>,
    here_steps: Vec<u64>,
}

impl RunningApp {
    /// Starts `run` and waits for the first tick.
    fn start(fixture: &Fixture) -> Self {
        let mut tool = fixture
            .tool_command(&[
                "run",
                "--manifest-path",
                fixture.manifest().to_str().unwrap(),
                "-p",
                "app",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: the guard can end cargo and rustc too if a build hangs.
            .process_group(0)
            .spawn()
            .expect("starting `cargo hotpatch run`");
        let (sender, lines) = mpsc::channel();
        let stdout = tool.stdout.take().expect("the tool's stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut tool_stderr = tool.stderr.take().expect("the tool's stderr");
        let collected = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = tool_stderr.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                collected
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let mut app = RunningApp {
            tool,
            lines,
            stderr,
            socket: fixture.socket(),
            pid: None,
            last: None,
            count_steps: vec![1],
            here_steps: vec![1],
        };
        let first = app.next_tick(Instant::now() + FIRST_BUILD, "the app's first tick");
        let Reply::Hello { pid, .. } = request(&app.socket, &Request::Hello)
            .unwrap_or_else(|error| panic!("`hello` on the control socket failed: {error}"))
        else {
            panic!("`hello` was answered with another reply");
        };
        assert_eq!(
            parent_of(pid),
            Some(app.tool.id()),
            "the process answering on {} (pid {pid}) is not the app started by this test",
            app.socket.display()
        );
        app.pid = Some(pid);
        assert_eq!(first.version, "v1", "the app starts at v1: {first:?}");
        app
    }

    fn stderr_tail(&self) -> String {
        let stderr = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        let start = stderr.len().saturating_sub(4000);
        let start = (start..stderr.len())
            .find(|&i| stderr.is_char_boundary(i))
            .unwrap_or(stderr.len());
        stderr[start..].to_owned()
    }

    /// The next line, checked against the one before.
    fn next_tick(&mut self, deadline: Instant, waiting_for: &str) -> Tick {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let line = match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!(
                "timed out waiting for {waiting_for}; last line {:?}\n--- run's stderr (tail)\n{}",
                self.last,
                self.stderr_tail()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.tool.wait();
                panic!(
                    "the app's output ended while waiting for {waiting_for}: the app died ({status:?}); last line {:?}\n--- run's stderr (tail)\n{}",
                    self.last,
                    self.stderr_tail()
                )
            }
        };
        self.check(&line)
    }

    /// Every line already received, checked.
    fn drain(&mut self) {
        loop {
            match self.lines.try_recv() {
                Ok(line) => {
                    self.check(&line);
                }
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => panic!(
                    "the app's output ended: the app died; last line {:?}\n--- run's stderr (tail)\n{}",
                    self.last,
                    self.stderr_tail()
                ),
            }
        }
    }

    fn check(&mut self, line: &str) -> Tick {
        let tick = Tick::parse(line)
            .unwrap_or_else(|| panic!("the app printed an unexpected line: {line:?}"));
        assert_eq!(
            tick.caught,
            format!("failure from {}", tick.version),
            "the panic of `fail` was not caught as the same version's: {line}"
        );
        if let Some(last) = &self.last {
            assert_eq!(
                tick.tick,
                last.tick + 1,
                "the host's tick counter jumped (did the app restart?): {last:?} then {line}"
            );
            assert_eq!(
                tick.steps,
                last.steps + 1,
                "logic::STEPS did not continue (a patch forked or reset it): {last:?} then {line}"
            );
            assert!(
                tick.spawned >= last.spawned,
                "logic::SPAWNED went down: {last:?} then {line}"
            );
            assert!(
                self.count_steps
                    .contains(&(tick.count - last.count.min(tick.count))),
                "counter's private static did not continue by {:?}: {last:?} then {line}",
                self.count_steps
            );
            assert!(
                self.here_steps
                    .contains(&(tick.here - last.here.min(tick.here))),
                "perthread's private thread-local did not continue by {:?}: {last:?} then {line}",
                self.here_steps
            );
        }
        self.last = Some(tick.clone());
        tick
    }

    /// Reads lines until one and the line before it satisfy `condition`.
    fn wait_until(&mut self, what: &str, condition: impl Fn(&Tick, &Tick) -> bool) -> Tick {
        let deadline = Instant::now() + NEW_VERSION;
        loop {
            let before = self.last.clone();
            let tick = self.next_tick(deadline, what);
            if before.is_some_and(|before| condition(&before, &tick)) {
                return tick;
            }
        }
    }

    /// Reads lines until one shows `version`.
    fn wait_for_version(&mut self, version: &str) -> Tick {
        let deadline = Instant::now() + NEW_VERSION;
        loop {
            let tick = self.next_tick(deadline, &format!("version={version}"));
            if tick.version == version {
                return tick;
            }
        }
    }

    /// Reads a few lines printed from now on; each must show `version`.
    fn expect_serving(&mut self, version: &str, context: &str) -> Tick {
        self.drain();
        let deadline = Instant::now() + MORE_TICKS;
        let mut tick = None;
        for _ in 0..3 {
            let next = self.next_tick(deadline, &format!("more ticks at {version} ({context})"));
            assert_eq!(
                next.version, version,
                "{context}: the app should still serve {version}: {next:?}"
            );
            tick = Some(next);
        }
        self.assert_alive(context);
        tick.unwrap()
    }

    /// The same app process still answers.
    fn assert_alive(&mut self, context: &str) {
        assert!(
            matches!(self.tool.try_wait(), Ok(None)),
            "{context}: `cargo hotpatch run` exited\n--- run's stderr (tail)\n{}",
            self.stderr_tail()
        );
        match request(&self.socket, &Request::Hello) {
            Ok(Reply::Hello { pid, .. }) => assert_eq!(
                Some(pid),
                self.pid,
                "{context}: another process answers on the control socket"
            ),
            other => panic!("{context}: `hello` failed: {other:?}"),
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        // The app: its pid from `hello` (or the one noted at start), killed only if it is the
        // tool's child.
        let pid = match request(&self.socket, &Request::Hello) {
            Ok(Reply::Hello { pid, .. }) => Some(pid),
            _ => self.pid,
        };
        if let Some(pid) = pid.filter(|&pid| parent_of(pid) == Some(self.tool.id())) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        // Then the tool, with whatever it started (cargo and rustc while it builds).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.tool.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.tool.kill();
        let _ = self.tool.wait();
    }
}

/// The parent pid of `pid`, from `/proc`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// One request on the control socket, as the tool sends it.
fn request(socket: &Path, request: &Request) -> Result<Reply, String> {
    let stream = UnixStream::connect(socket).map_err(|e| format!("connecting: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut line = serde_json::to_string(request).map_err(|e| e.to_string())?;
    line.push('\n');
    (&stream)
        .write_all(line.as_bytes())
        .map_err(|e| format!("sending: {e}"))?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(|e| format!("reading: {e}"))?;
    match serde_json::from_str::<Response>(&answer).map_err(|e| format!("{e}: {answer:?}"))? {
        Response::Ok(reply) => Ok(reply),
        Response::Error(error) => Err(format!("refused at `{}`: {}", error.step, error.message)),
    }
}

/// The patch id of a patch file.
fn patch_id(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("reading a patch file");
    PatchFile::parse(&bytes).expect("a valid patch file").id
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn patches_apply_stack_roll_back_and_refuse_bad_input() {
    let _serial = lock_fixture_target();
    let fixture = Fixture::new();
    let mut app = RunningApp::start(&fixture);

    // 1. The base build runs v1.
    let v1 = app.wait_for_version("v1");
    let before_patch = app.expect_serving("v1", "before any patch");
    assert!(before_patch.steps > v1.steps);

    // 2. A patch of `logic` to v2: the version string and the panic message.
    fixture.edit("logic/src/lib.rs", "\"v1\"", "\"v2\"");
    fixture.edit("logic/src/lib.rs", "failure from v1", "failure from v2");
    let p2 = fixture.build_patch("p2.hotpatch");
    app.drain();
    let steps_before = app.last.as_ref().unwrap().steps;
    let applied = fixture.apply(&p2).success();
    assert!(
        applied.stderr.contains("Applied"),
        "`apply` reports what it did: {}",
        applied.describe()
    );
    let v2 = app.wait_for_version("v2");
    assert!(
        v2.steps > steps_before,
        "STEPS kept counting across the patch (shared static, not reset): {steps_before} then {v2:?}"
    );
    assert_eq!(
        v2.caught, "failure from v2",
        "the patched panic is caught by the host"
    );
    // Tasks spawned by steps 1..v2.steps-1 are at most v2.steps-1: reaching v2.steps means a
    // task spawned by the patched code ran on the host's tokio runtime.
    let deadline = Instant::now() + MORE_TICKS;
    loop {
        let tick = app.next_tick(deadline, "a task spawned by patched code to run");
        assert_eq!(tick.version, "v2", "still at v2: {tick:?}");
        if tick.spawned >= v2.steps {
            break;
        }
    }
    app.expect_serving("v2", "after applying v2");

    // 3. Stacked patches: each build is cumulative against the base.
    fixture.edit("logic/src/lib.rs", "\"v2\"", "\"v3\"");
    fixture.edit("logic/src/lib.rs", "failure from v2", "failure from v3");
    let p3 = fixture.build_patch("p3.hotpatch");
    fixture.apply(&p3).success();
    app.wait_for_version("v3");
    app.expect_serving("v3", "after applying v3");

    fixture.edit("logic/src/lib.rs", "\"v3\"", "\"v4\"");
    fixture.edit("logic/src/lib.rs", "failure from v3", "failure from v4");
    let p4 = fixture.build_patch("p4.hotpatch");
    fixture.apply(&p4).success();
    app.wait_for_version("v4");
    app.expect_serving("v4", "after applying v4");

    // 4. Status.
    let status = fixture.status();
    assert_eq!(
        status.pid,
        app.pid.unwrap(),
        "status is the app's: {status:?}"
    );
    let ids = [patch_id(&p2), patch_id(&p3), patch_id(&p4)];
    let step = status
        .functions
        .iter()
        .find(|f| f.key == "logic::step")
        .unwrap_or_else(|| panic!("status lists logic::step: {status:?}"));
    assert!(step.version > 0, "logic::step runs patched code: {step:?}");
    assert_eq!(
        step.patch.as_deref(),
        Some(ids[2].as_str()),
        "logic::step runs the last patch's code: {step:?}"
    );
    // The version string lives in a hot trait method: methods are patched like functions.
    let display = status
        .functions
        .iter()
        .find(|f| f.key == "<logic::Report as fmt::Display>::fmt")
        .unwrap_or_else(|| panic!("status lists the Display method of Report: {status:?}"));
    assert_eq!(
        display.patch.as_deref(),
        Some(ids[2].as_str()),
        "the method runs the last patch's code: {display:?}"
    );
    let listed: Vec<&str> = status.patches.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        listed, ids,
        "status lists the three patches, oldest first: {status:?}"
    );
    assert!(
        status
            .patches
            .iter()
            .all(|p| p.active && p.crates == ["logic"]),
        "the three patches of `logic` are active: {:?}",
        status.patches
    );
    let committed: Vec<&str> = status
        .history
        .iter()
        .filter(|h| h.action == "committed")
        .map(|h| h.label.as_str())
        .collect();
    assert_eq!(
        committed, ids,
        "history has one commit per patch: {:?}",
        status.history
    );
    assert!(
        status.history.iter().all(|h| !h.changes.is_empty()),
        "each history entry lists its function changes: {:?}",
        status.history
    );
    assert!(
        status.mapped_bytes > 0,
        "patch code is kept mapped: {status:?}"
    );

    // 5. Rollbacks: v3, v2, then the base's v1.
    for version in ["v3", "v2", "v1"] {
        fixture.rollback().success();
        app.wait_for_version(version);
        app.expect_serving(version, &format!("after rolling back to {version}"));
    }
    let status = fixture.status();
    let step = status
        .functions
        .iter()
        .find(|f| f.key == "logic::step")
        .unwrap();
    assert_eq!(
        step.patch, None,
        "logic::step runs the base's code again: {step:?}"
    );
    assert!(
        status.patches.iter().all(|p| !p.active),
        "every patch is rolled back: {:?}",
        status.patches
    );
    assert_eq!(
        status
            .history
            .iter()
            .filter(|h| h.action == "rolled_back")
            .count(),
        3,
        "history has the three rollbacks: {:?}",
        status.history
    );

    // 6a. A hot function's signature changed: refused at build time, naming it.
    fixture.edit(
        "logic/src/lib.rs",
        "pub fn fail() -> u32",
        "pub fn fail() -> u64",
    );
    fixture
        .build_refused("signature.hotpatch")
        .stderr_names(&["logic::fail", "restart"]);
    fixture.edit(
        "logic/src/lib.rs",
        "pub fn fail() -> u64",
        "pub fn fail() -> u32",
    );
    app.expect_serving("v1", "after the refused signature change");

    let status_before = fixture.status();
    let p2_bytes = std::fs::read(&p2).expect("reading p2");
    let library_offset = p2_bytes.len() - PatchFile::parse(&p2_bytes).unwrap().library.len();

    // 6b. A corrupt patch: one byte of the library flipped.
    let mut corrupt = p2_bytes.clone();
    let middle = library_offset + (corrupt.len() - library_offset) / 2;
    corrupt[middle] ^= 0x40;
    let corrupt_path = fixture.root().join("corrupt.hotpatch");
    std::fs::write(&corrupt_path, &corrupt).unwrap();
    fixture
        .apply(&corrupt_path)
        .failure()
        .stderr_names(&["`integrity`"]);
    app.expect_serving("v1", "after refusing a corrupt patch");

    // 6c. A truncated patch.
    let truncated_path = fixture.root().join("truncated.hotpatch");
    std::fs::write(&truncated_path, &p2_bytes[..library_offset + 100]).unwrap();
    fixture
        .apply(&truncated_path)
        .failure()
        .stderr_names(&["`integrity`", "truncated"]);
    app.expect_serving("v1", "after refusing a truncated patch");

    // 6d. A patch made for another build.
    let mut foreign = PatchFile::parse(&p2_bytes).unwrap();
    foreign.manifest.base.build_id = "00".repeat(20);
    let foreign = PatchFile::new(foreign.manifest, foreign.library);
    let foreign_path = fixture.root().join("foreign.hotpatch");
    std::fs::write(&foreign_path, foreign.to_bytes()).unwrap();
    fixture
        .apply(&foreign_path)
        .failure()
        .stderr_names(&["`base_build`"]);
    app.expect_serving("v1", "after refusing a patch for another build");
    assert_eq!(
        fixture.status(),
        status_before,
        "refused patches change nothing"
    );

    // 6e. The same patch twice: re-applying the rolled-back v4, then again.
    fixture.apply(&p4).success();
    app.wait_for_version("v4");
    app.expect_serving("v4", "after re-applying v4");
    let status_before = fixture.status();
    let again = fixture.apply(&p4).success();
    assert!(
        again.stdout.contains("already applied") || again.stderr.contains("already applied"),
        "applying a patch twice says it is already applied: {}",
        again.describe()
    );
    app.expect_serving("v4", "after applying v4 twice");
    assert_eq!(
        fixture.status(),
        status_before,
        "applying a patch twice changes nothing"
    );
}

#[test]
fn private_statics_and_thread_locals_are_shared_with_patches() {
    let _serial = lock_fixture_target();
    let fixture = Fixture::new();
    let mut app = RunningApp::start(&fixture);
    app.wait_for_version("v1");

    // `counter::count` adds to a private static: the patch's code must add to the host's copy.
    app.count_steps = vec![1, 1000];
    fixture.edit(
        "counter/src/lib.rs",
        "fetch_add(1, Ordering::SeqCst)",
        "fetch_add(1000, Ordering::SeqCst)",
    );
    let counter_patch = fixture.build_patch("counter.hotpatch");
    fixture.apply(&counter_patch).success();
    app.wait_until("count to step by 1000", |last, tick| {
        tick.count == last.count + 1000
    });
    app.count_steps = vec![1000];
    app.expect_serving("v1", "after patching code that uses a private static");

    // `perthread::count_here` adds to a private thread-local: the same for the host's copy.
    app.here_steps = vec![1, 1000];
    fixture.edit(
        "perthread/src/lib.rs",
        "PER_THREAD.get() + 1)",
        "PER_THREAD.get() + 1000)",
    );
    let thread_local_patch = fixture.build_patch("perthread.hotpatch");
    fixture.apply(&thread_local_patch).success();
    app.wait_until("here to step by 1000", |last, tick| {
        tick.here == last.here + 1000
    });
    app.here_steps = vec![1000];
    app.expect_serving("v1", "after patching code that uses a private thread-local");

    // Rolling both back returns to the original code, still on the same state.
    app.here_steps = vec![1, 1000];
    fixture.rollback().success();
    app.wait_until("here to step by 1 again", |last, tick| {
        tick.here == last.here + 1
    });
    app.here_steps = vec![1];
    app.count_steps = vec![1, 1000];
    fixture.rollback().success();
    app.wait_until("count to step by 1 again", |last, tick| {
        tick.count == last.count + 1
    });
    app.count_steps = vec![1];
    app.expect_serving("v1", "after rolling both back");
}
