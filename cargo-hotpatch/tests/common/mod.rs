//! Helpers shared by the end-to-end tests: a copy of the fixture workspace
//! `tests/fixtures/patchable`, the tool run on it, and the fixture app run by `cargo hotpatch run`
//! with every line it prints checked against the one before.
//!
//! The fixture app prints one line per 50 ms tick:
//! `tick=N version=vX steps=N spawned=N count=N here=N caught=[failure from vX]`.
//! Every line read is checked against the one before: the host's tick counter and the shared
//! `STEPS` static advance by exactly one, and `count`/`here` (a private static and a private
//! thread-local) by one of the steps the test allows, so a restarted app, a forked or reset static
//! or a missed tick fails the test at once.
//!
//! Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hotreload_runtime::control::protocol::{Reply, Request, Response, StatusReport};
use hotreload_runtime::patch_file::PatchFile;

/// How long a committed patch or rollback may take to show in the app's output.
pub const NEW_VERSION: Duration = Duration::from_secs(30);
/// How long the app may take to print a few more ticks.
pub const MORE_TICKS: Duration = Duration::from_secs(30);

/// Held by each test of a binary: its tests share one fixture target directory and its control
/// socket. (Test binaries run one after another unless asked otherwise, and the dev and release
/// tests use different target directories, so a lock within one process is enough.)
static FIXTURE_TARGET: Mutex<()> = Mutex::new(());

pub fn lock_fixture_target() -> MutexGuard<'static, ()> {
    FIXTURE_TARGET
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The cargo profile the fixture is built with, by `run` and by `build` alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Dev,
    Release,
}

impl Profile {
    /// The directory `cargo hotpatch` keeps its state in: `target/hotpatch/<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Dev => "dev",
            Profile::Release => "release",
        }
    }

    /// What selects the profile on `run` and `build`.
    fn args(self) -> &'static [&'static str] {
        match self {
            Profile::Dev => &[],
            Profile::Release => &["--release"],
        }
    }

    /// The fixture builds of each profile have a target directory of their own, so the test
    /// binaries of the two can run at once without sharing cargo's lock or the hotpatch state.
    fn target_dir(self) -> &'static str {
        match self {
            Profile::Dev => "fixture-target",
            Profile::Release => "fixture-target-release",
        }
    }

    /// How long the first `run` may take: it may build tokio and the runtime from scratch.
    pub fn first_build(self) -> Duration {
        match self {
            Profile::Dev => Duration::from_secs(300),
            // Optimised, on two cores, while other builds may be running.
            Profile::Release => Duration::from_secs(600),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The fixture workspace and the tool.

/// A copy of the fixture workspace in a temporary directory.
pub struct Fixture {
    dir: tempfile::TempDir,
    target: PathBuf,
    profile: Profile,
    /// The package `run` and `build` name with `-p`, whose binary has the same name.
    package: &'static str,
    /// Environment for the tool, and so for the app it starts.
    env: Vec<(String, String)>,
}

impl Fixture {
    pub fn new(profile: Profile) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hotpatch-e2e-")
            .tempdir()
            .expect("a temporary directory");
        copy_patchable_fixture(dir.path());
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join(profile.target_dir());
        let fixture = Fixture {
            dir,
            target,
            profile,
            package: "app",
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

    /// A workspace of its own in a temporary directory holding a copy of `examples/gateway`,
    /// built into the same target directory as the fixture.
    pub fn gateway(profile: Profile) -> Self {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::Builder::new()
            .prefix("hotpatch-gw-")
            .tempdir()
            .expect("a temporary directory");
        copy_dir(
            &manifest_dir.join("../examples/gateway"),
            &dir.path().join("gateway"),
        );
        // The workspace's lock file pins the same versions of tokio and serde.
        std::fs::copy(
            manifest_dir.join("../Cargo.lock"),
            dir.path().join("Cargo.lock"),
        )
        .expect("copying Cargo.lock");
        std::fs::write(
            dir.path().join("Cargo.toml"),
            format!(
                r#"[workspace]
resolver = "2"
members = ["gateway"]

[workspace.dependencies]
hotreload-runtime = {{ path = {:?} }}
serde = {{ version = "1", features = ["derive"] }}
tokio = {{ version = "1", features = ["rt-multi-thread", "macros", "time"] }}
"#,
                runtime_path()
            ),
        )
        .expect("writing Cargo.toml");
        Fixture {
            dir,
            target: Path::new(env!("CARGO_TARGET_TMPDIR")).join(profile.target_dir()),
            profile,
            package: "gateway",
            env: Vec::new(),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The package `run` and `build` use.
    pub fn package(&self) -> &'static str {
        self.package
    }

    /// Replaces a whole source file of the fixture with `contents`.
    pub fn replace_file(&self, file: &str, contents: &str) {
        std::fs::write(self.root().join(file), contents).expect("writing a fixture source file");
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

    /// Replaces `from` (which must occur) by `to` in a fixture source file.
    pub fn edit(&self, file: &str, from: &str, to: &str) {
        self.edit_all(file, &[(from, to)]);
    }

    /// Makes every `(from, to)` replacement in `file` in one write: one save, as an editor makes
    /// it (two writes in a row are two saves, which `watch` may patch one by one).
    pub fn edit_all(&self, file: &str, edits: &[(&str, &str)]) {
        let path = self.root().join(file);
        let mut text = std::fs::read_to_string(&path).expect("a fixture source file");
        for (from, to) in edits {
            assert!(
                text.contains(from),
                "{file} does not contain `{from}`:\n{text}"
            );
            text = text.replace(from, to);
        }
        std::fs::write(&path, text).expect("writing a fixture source file");
    }

    /// `cargo-hotpatch hotpatch ARGS`, run to completion.
    pub fn tool(&self, args: &[&str]) -> ToolOutput {
        let output = self
            .tool_command(args)
            .stdin(Stdio::null())
            .output()
            .expect("running cargo-hotpatch");
        ToolOutput::new(args, output)
    }

    pub fn tool_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cargo-hotpatch"));
        command
            .arg("hotpatch")
            .args(args)
            .current_dir(self.root())
            .env("CARGO_TARGET_DIR", &self.target)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Sets an environment variable for the tool's commands from now on (and so for the app).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// `build` of the current sources against the running base (of the fixture's profile) into
    /// `file`, whatever its outcome: the patch's path and what the tool printed.
    pub fn build(&self, file: &str) -> (PathBuf, ToolOutput) {
        self.build_with(file, &[])
    }

    /// [`Fixture::build`] with more arguments (`--sign KEY`).
    pub fn build_with(&self, file: &str, extra: &[&str]) -> (PathBuf, ToolOutput) {
        let path = self.root().join(file);
        let manifest = self.manifest();
        let mut args = vec![
            "build",
            "--manifest-path",
            manifest.to_str().unwrap(),
            "-p",
            self.package,
            "-o",
            path.to_str().unwrap(),
        ];
        args.extend(self.profile.args());
        args.extend(extra);
        let output = self.tool(&args);
        (path, output)
    }

    /// `build` that must succeed; returns the patch.
    pub fn build_patch(&self, file: &str) -> PathBuf {
        let (path, output) = self.build(file);
        output.success();
        assert!(path.is_file(), "`build` wrote no {}", path.display());
        path
    }

    /// `build` that must fail; returns its output.
    pub fn build_refused(&self, file: &str) -> ToolOutput {
        let (path, output) = self.build(file);
        let output = output.failure();
        assert!(
            !path.exists(),
            "a refused `build` still wrote {}",
            path.display()
        );
        output
    }

    pub fn apply(&self, patch: &Path) -> ToolOutput {
        self.tool(&[
            "apply",
            patch.to_str().unwrap(),
            "--target",
            self.socket().to_str().unwrap(),
        ])
    }

    pub fn rollback(&self) -> ToolOutput {
        self.tool(&["rollback", "--target", self.socket().to_str().unwrap()])
    }

    pub fn status(&self) -> StatusReport {
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

/// Copies `tests/fixtures/patchable` into `dir`, naming the runtime by its absolute path there.
pub fn copy_patchable_fixture(dir: &Path) {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&manifest_dir.join("tests/fixtures/patchable"), dir);
    let runtime = runtime_path();
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("the fixture's Cargo.toml");
    let relative = "../../../../hotreload-runtime";
    assert!(
        text.contains(relative),
        "the fixture's Cargo.toml no longer names the runtime as `{relative}`:\n{text}"
    );
    std::fs::write(&manifest, text.replace(relative, &runtime)).expect("writing Cargo.toml");
}

/// The runtime crate's absolute path.
fn runtime_path() -> String {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::path::absolute(manifest_dir.join("../hotreload-runtime"))
        .expect("the runtime's absolute path")
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

/// What a finished `cargo-hotpatch` printed.
pub struct ToolOutput {
    command: String,
    code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    pub fn new(args: &[&str], output: Output) -> Self {
        Self::of_command(format!("cargo hotpatch {}", args.join(" ")), output)
    }

    /// The output of any `command` (as it is shown in messages).
    pub fn of_command(command: String, output: Output) -> Self {
        ToolOutput {
            command,
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "`{}` exited with {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    /// Whether it exited with 0.
    pub fn succeeded(&self) -> bool {
        self.code == Some(0)
    }

    pub fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "expected success: {}", self.describe());
        self
    }

    pub fn failure(self) -> Self {
        assert!(
            self.code.is_some_and(|code| code != 0),
            "expected a non-zero exit: {}",
            self.describe()
        );
        self
    }

    /// Asserts that stderr mentions each of `needles`.
    pub fn stderr_names(&self, needles: &[&str]) -> &Self {
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
pub struct Tick {
    pub tick: u64,
    pub version: String,
    pub steps: u64,
    pub spawned: u64,
    pub count: u64,
    pub here: u64,
    pub caught: String,
}

impl Tick {
    pub fn parse(line: &str) -> Option<Tick> {
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
pub struct RunningApp {
    tool: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    socket: PathBuf,
    /// The app's pid, from `hello`.
    pub pid: Option<u32>,
    /// The last line read.
    pub last: Option<Tick>,
    /// What `counter::count` may add per tick (its private static), and `perthread::count_here`
    /// (its private thread-local): 1 until a test patches them.
    pub count_steps: Vec<u64>,
    pub here_steps: Vec<u64>,
    /// Set by [`RunningApp::expect_restart`]: the next first tick starts a new sequence.
    restart_expected: bool,
}

impl RunningApp {
    /// Starts `run` and waits for the first tick.
    pub fn start(fixture: &Fixture) -> Self {
        Self::start_with(fixture, "run")
    }

    /// Starts `cargo hotpatch COMMAND` (`run` or `watch`) and waits for the first tick.
    pub fn start_with(fixture: &Fixture, command: &str) -> Self {
        Self::start_with_args(fixture, command, &[])
    }

    /// [`RunningApp::start_with`], with more arguments for the command.
    pub fn start_with_args(fixture: &Fixture, command: &str, extra: &[&str]) -> Self {
        let manifest = fixture.manifest();
        let mut args = vec![
            command,
            "--manifest-path",
            manifest.to_str().unwrap(),
            "-p",
            "app",
        ];
        args.extend(fixture.profile.args());
        args.extend(extra);
        let mut tool = fixture
            .tool_command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: the guard can end cargo and rustc too if a build hangs.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("starting `cargo hotpatch {command}`: {error}"));
        let lines = read_lines(tool.stdout.take().expect("the tool's stdout"));
        let stderr = collect_output(tool.stderr.take().expect("the tool's stderr"));
        let mut app = RunningApp {
            tool,
            lines,
            stderr,
            socket: fixture.socket(),
            pid: None,
            last: None,
            count_steps: vec![1],
            here_steps: vec![1],
            restart_expected: false,
        };
        let first = app.next_tick(
            Instant::now() + fixture.profile.first_build(),
            "the app's first tick",
        );
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

    pub fn stderr_tail(&self) -> String {
        let stderr = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        let start = stderr.len().saturating_sub(4000);
        let start = (start..stderr.len())
            .find(|&i| stderr.is_char_boundary(i))
            .unwrap_or(stderr.len());
        stderr[start..].to_owned()
    }

    /// The next line, checked against the one before.
    pub fn next_tick(&mut self, deadline: Instant, waiting_for: &str) -> Tick {
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
    pub fn drain(&mut self) {
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
        if self.restart_expected && tick.tick == 0 {
            // A new process: its counts start again.
            self.restart_expected = false;
            self.last = None;
            self.pid = None;
        }
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
    pub fn wait_until(&mut self, what: &str, condition: impl Fn(&Tick, &Tick) -> bool) -> Tick {
        let deadline = Instant::now() + NEW_VERSION;
        loop {
            let before = self.last.clone();
            let tick = self.next_tick(deadline, what);
            if before.is_some_and(|before| condition(&before, &tick)) {
                return tick;
            }
        }
    }

    /// Waits until `watch` has compiled its baseline (the base's functions, which the first
    /// patch's list of changed functions is compared with): it then starts compilers for the
    /// next save, which wait on their argument pipes.
    pub fn wait_until_watch_is_ready(&self) {
        let deadline = Instant::now() + NEW_VERSION;
        while !children_of(self.tool.id())
            .into_iter()
            .any(waits_for_arguments)
        {
            assert!(
                Instant::now() < deadline,
                "watch started no compiler for the next save\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The next ticks may come from a restarted app (watch rebuilt it): a tick 0 starts anew.
    pub fn expect_restart(&mut self) {
        self.restart_expected = true;
    }

    /// The app's pid, as it said on the control socket.
    pub fn pid(&mut self) -> Option<u32> {
        if self.pid.is_none() {
            self.assert_alive("asking the app's pid");
        }
        self.pid
    }

    /// Whether the app restarted since [`RunningApp::expect_restart`].
    pub fn restarted(&self) -> bool {
        !self.restart_expected
    }

    /// Everything the tool printed on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits for `version` after a patch of `logic` and checks the host's world is the patch's:
    /// `STEPS` continued from `steps_before`, the patched panic is caught, and a task the patched
    /// code spawned ran on the host's tokio runtime.
    pub fn expect_patched(&mut self, version: &str, steps_before: u64) -> Tick {
        let patched = self.wait_for_version(version);
        assert!(
            patched.steps > steps_before,
            "STEPS kept counting across the patch (shared static, not reset): {steps_before} then {patched:?}"
        );
        assert_eq!(
            patched.caught,
            format!("failure from {version}"),
            "the patched panic is caught by the host"
        );
        // Tasks spawned before the patched step number at most its steps - 1: reaching them
        // means a task spawned by the patched code ran on the host's tokio runtime.
        let deadline = Instant::now() + MORE_TICKS;
        loop {
            let tick = self.next_tick(deadline, "a task spawned by patched code to run");
            assert_eq!(tick.version, version, "still at {version}: {tick:?}");
            if tick.spawned >= patched.steps {
                break;
            }
        }
        self.expect_serving(version, "after applying the patch");
        patched
    }

    /// Reads lines until one shows `version`.
    pub fn wait_for_version(&mut self, version: &str) -> Tick {
        let deadline = Instant::now() + NEW_VERSION;
        loop {
            let tick = self.next_tick(deadline, &format!("version={version}"));
            if tick.version == version {
                return tick;
            }
        }
    }

    /// Reads a few lines printed from now on; each must show `version`.
    pub fn expect_serving(&mut self, version: &str, context: &str) -> Tick {
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
    pub fn assert_alive(&mut self, context: &str) {
        assert!(
            matches!(self.tool.try_wait(), Ok(None)),
            "{context}: `cargo hotpatch run` exited\n--- run's stderr (tail)\n{}",
            self.stderr_tail()
        );
        match request(&self.socket, &Request::Hello) {
            Ok(Reply::Hello { pid, .. }) => {
                if self.pid.is_none() {
                    // Restarted by `watch`: the new app must be the tool's child.
                    assert_eq!(
                        parent_of(pid),
                        Some(self.tool.id()),
                        "{context}: the restarted app (pid {pid}) is not the tool's child"
                    );
                    self.pid = Some(pid);
                }
                assert_eq!(
                    Some(pid),
                    self.pid,
                    "{context}: another process answers on the control socket"
                )
            }
            other => panic!("{context}: `hello` failed: {other:?}"),
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        stop_tool_and_app(&mut self.tool, &self.socket, self.pid);
    }
}

/// Kills the app a `cargo hotpatch run`/`watch` process started (its pid from `hello` on
/// `socket`, or `pid`; only if it is the tool's child), then the tool with whatever it started
/// (cargo and rustc while it builds).
pub fn stop_tool_and_app(tool: &mut Child, socket: &Path, pid: Option<u32>) {
    let pid = match request(socket, &Request::Hello) {
        Ok(Reply::Hello { pid, .. }) => Some(pid),
        _ => pid,
    };
    if let Some(pid) = pid.filter(|&pid| parent_of(pid) == Some(tool.id())) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", tool.id())])
        .stderr(Stdio::null())
        .status();
    let _ = tool.kill();
    let _ = tool.wait();
}

/// Calls `read` (which may do other work, such as draining an app's lines) until the text it
/// returns has `needle` after its first `from` bytes, for at most [`NEW_VERSION`]; returns what
/// came after `from`.
pub fn wait_for_text(mut read: impl FnMut() -> String, from: usize, needle: &str) -> String {
    let deadline = Instant::now() + NEW_VERSION;
    loop {
        let text = read();
        let new = text.get(from..).unwrap_or_default().to_owned();
        if new.contains(needle) {
            return new;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for `{needle}`; the tool printed:\n{new}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Everything `output` prints, collected on a thread of its own.
pub fn collect_output(mut output: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let collected = Arc::clone(&text);
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = output.read(&mut buffer) {
            if n == 0 {
                break;
            }
            collected
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    });
    text
}

/// The lines `output` prints, read on a thread of their own.
pub fn read_lines(output: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// Starts the fixture's built app directly (not through the tool) with `env`; its stdout lines.
pub fn spawn_app<V: AsRef<std::ffi::OsStr>>(
    fixture: &Fixture,
    env: &[(&str, V)],
) -> (Child, Receiver<String>) {
    let mut app = Command::new(fixture.target().join("debug").join(fixture.package))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the app");
    let lines = read_lines(app.stdout.take().unwrap());
    (app, lines)
}

/// The parent pid of `pid`, from `/proc`.
/// The processes whose parent is `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| parent_of(child) == Some(pid))
        .collect()
}

/// Whether a process is blocked opening a named pipe: a compiler `watch` started ahead of the
/// next save, waiting for its arguments.
pub fn waits_for_arguments(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/wchan"))
        .is_ok_and(|wchan| wchan.trim() == "wait_for_partner")
}

pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// One request on the control socket, as the tool sends it.
pub fn request(socket: &Path, request: &Request) -> Result<Reply, String> {
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
pub fn patch_id(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("reading a patch file");
    PatchFile::parse(&bytes).expect("a valid patch file").id
}
