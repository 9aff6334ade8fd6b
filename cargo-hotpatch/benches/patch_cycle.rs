//! The patch cycle against a plain incremental `cargo build`, side by side on one fixture copy.
//!
//! Run it with `cargo bench -p cargo-hotpatch --bench patch_cycle` (set `PATCH_CYCLE_ITERATIONS`
//! for more than the default 9 measured iterations). It copies `tests/fixtures/patchable` to a
//! temporary directory, starts the app with `cargo hotpatch run` (ticking every 5 ms through
//! `FIXTURE_TICK_MS`), then, for each one-line edit of the version literal in
//! `logic/src/lib.rs` (`"v1"` -> `"v2"` -> ...), times (a) `cargo hotpatch build`, `cargo
//! hotpatch apply` and save-to-new-behaviour (the app printing the new version), with the
//! split the tool reports itself, and (b) `cargo build -p app` of the same edit in the same
//! target directory with the host build's environment, so an incremental rebuild of `logic` and
//! `app` only. The first edit is a warm-up and is not counted. The fixture builds use
//! `$CARGO_TARGET_TMPDIR/bench-fixture-target`; the first run compiles tokio and the runtime
//! there once. It prints a table with the goals next to the numbers, then kills the app and the
//! tool. A benchmark of wall times of subprocesses, so no criterion (`harness = false`).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotreload_runtime::control::protocol::{PatchReport, Reply, Request, Response};

/// Measured iterations unless `PATCH_CYCLE_ITERATIONS` says more.
const ITERATIONS: usize = 9;
/// The app's tick interval: a commit waits for the next safe point, once per tick.
const TICK_MS: &str = "5";
/// The first `run` may build tokio and the runtime from scratch.
const FIRST_BUILD: Duration = Duration::from_secs(600);
/// How long an applied patch may take to show in the app's output.
const NEW_VERSION: Duration = Duration::from_secs(30);

/// Goals printed next to the numbers.
const GOAL_BUILD_APPLY_MS: f64 = 300.0;
const GOAL_RATIO: f64 = 0.4;
const GOAL_SIZE_PERCENT: f64 = 5.0;

fn main() {
    let iterations = std::env::var("PATCH_CYCLE_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ITERATIONS)
        .max(1);
    // The tool binary: cargo builds it (in the bench profile, as `cargo install` would) before
    // running this benchmark and names it in `CARGO_BIN_EXE_cargo-hotpatch`, so there is no
    // need to run `cargo build -p cargo-hotpatch` from here and use `target/debug/cargo-hotpatch`.
    // Canonical, as the host build names itself (`current_exe`) in `RUSTC_WORKSPACE_WRAPPER`.
    let tool = std::fs::canonicalize(env!("CARGO_BIN_EXE_cargo-hotpatch"))
        .expect("the cargo-hotpatch binary");
    let fixture = Fixture::new(tool);
    let _exclusive = fixture.lock_target();
    eprintln!(
        "patch_cycle: fixture in {}, target {}",
        fixture.root().display(),
        fixture.target.display()
    );
    eprintln!(
        "patch_cycle: `cargo hotpatch run -p app` (the first run builds tokio and the runtime)"
    );
    let mut app = RunningApp::start(&fixture);
    let host_size = std::fs::metadata(fixture.target.join("hotpatch/dev/base/app"))
        .expect("the base record's copy of the host")
        .len();

    let mut samples = Vec::new();
    let mut recompiled = Vec::new();
    for i in 0..=iterations {
        let (from, to) = (format!("\"v{}\"", i + 1), format!("\"v{}\"", i + 2));
        let sample = cycle(&fixture, &mut app, &from, &to, i);
        if i == 0 {
            eprintln!("patch_cycle: warm-up {from} -> {to} done");
            recompiled = sample.recompiled.clone();
            continue;
        }
        eprintln!(
            "patch_cycle: {i}/{iterations} {from} -> {to}: build {:.1} ms, apply {:.1} ms, save->new {:.1} ms, cargo build {:.1} ms",
            sample.build, sample.apply, sample.save_to_new, sample.cargo_build
        );
        samples.push(sample);
    }
    drop(app);
    print_table(&samples, &recompiled, host_size);
}

/// One edit, patched then rebuilt with cargo; times in milliseconds.
struct Sample {
    build: f64,
    apply: f64,
    save_to_new: f64,
    cargo_build: f64,
    rustc: f64,
    analysis: f64,
    link: f64,
    verify: f64,
    load: f64,
    commit: f64,
    patch_size: u64,
    /// The crates `cargo build` compiled.
    recompiled: Vec<String>,
}

fn cycle(fixture: &Fixture, app: &mut RunningApp, from: &str, to: &str, i: usize) -> Sample {
    let version = to.trim_matches('"');
    fixture.edit("logic/src/lib.rs", from, to);
    let saved = Instant::now();

    // (a) build, apply, and the first line showing the new version.
    let patch = fixture.root().join(format!("patches/p{i}.hotpatch"));
    let started = Instant::now();
    let built = fixture.tool(&[
        "build",
        "--manifest-path",
        fixture.manifest().to_str().unwrap(),
        "-p",
        "app",
        "-o",
        patch.to_str().unwrap(),
        "--message-format",
        "json",
    ]);
    let build = ms(started.elapsed());
    let built: serde_json::Value = built
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|value| value["reason"] == "patch-built")
        .unwrap_or_else(|| panic!("`build` printed no patch-built line: {}", built.describe()));
    let field = |name: &str| {
        built[name]
            .as_f64()
            .unwrap_or_else(|| panic!("the patch-built line has no `{name}`: {built}"))
    };

    let started = Instant::now();
    let applied = fixture.tool(&[
        "apply",
        patch.to_str().unwrap(),
        "--target",
        fixture.socket().to_str().unwrap(),
        "--message-format",
        "json",
    ]);
    let apply = ms(started.elapsed());
    let report: PatchReport = serde_json::from_str(applied.stdout.trim()).unwrap_or_else(|error| {
        panic!(
            "`apply` printed no PatchReport ({error}): {}",
            applied.describe()
        )
    });
    assert!(
        !report.already_applied && !report.changes.is_empty(),
        "`apply` changed nothing: {report:?}"
    );
    let shown = app.wait_for_version(version);
    let save_to_new = ms(shown.saturating_duration_since(saved));

    // (b) the same edit, rebuilt by cargo as the host build does.
    let started = Instant::now();
    let output = fixture.cargo_build();
    let cargo_build = ms(started.elapsed());
    let recompiled = output
        .stderr
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Compiling "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert!(
        recompiled.iter().any(|name| name == "logic"),
        "`cargo build` did not recompile the edited `logic`: {}",
        output.describe()
    );
    assert!(
        recompiled.iter().all(|name| name == "logic" || name == "app"),
        "`cargo build` recompiled more than `logic` and `app`, so it is no incremental rebuild with the host build's environment: {}",
        output.describe()
    );

    Sample {
        build,
        apply,
        save_to_new,
        cargo_build,
        rustc: field("rustc_ms"),
        analysis: field("analysis_ms"),
        link: field("link_ms"),
        verify: report.verify_us as f64 / 1e3,
        load: report.load_us as f64 / 1e3,
        commit: report.commit_us as f64 / 1e3,
        patch_size: std::fs::metadata(&patch).expect("the patch file").len(),
        recompiled,
    }
}

fn print_table(samples: &[Sample], recompiled: &[String], host_size: u64) {
    let column = |f: fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<f64>>();
    let build_apply = column(|s| s.build + s.apply);
    let cargo_build = column(|s| s.cargo_build);
    let ratio = median(&build_apply) / median(&cargo_build);
    let patch_size = median(
        &samples
            .iter()
            .map(|s| s.patch_size as f64)
            .collect::<Vec<_>>(),
    );
    let percent = patch_size / host_size as f64 * 100.0;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };

    println!();
    println!(
        "patch cycle: {} iterations after 1 warm-up, app ticking every {TICK_MS} ms; `cargo build` recompiled: {}",
        samples.len(),
        recompiled.join(", ")
    );
    println!(
        "{:<44} {:>9} {:>9} {:>9}   goal",
        "(ms)", "median", "min", "max"
    );
    let row = |name: &str, values: &[f64], goal: &str| {
        let (min, max) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        println!(
            "{name:<44} {:>9.2} {min:>9.2} {max:>9.2}   {goal}",
            median(values)
        );
    };
    row("(a) cargo hotpatch build (wall)", &column(|s| s.build), "");
    row("      rustc (tool's rustc_ms)", &column(|s| s.rustc), "");
    row(
        "      checks (tool's analysis_ms)",
        &column(|s| s.analysis),
        "",
    );
    row("      link (tool's link_ms)", &column(|s| s.link), "");
    row("(a) cargo hotpatch apply (wall)", &column(|s| s.apply), "");
    row(
        "      verify (runtime's verify_us)",
        &column(|s| s.verify),
        "",
    );
    row("      load (runtime's load_us)", &column(|s| s.load), "");
    row(
        "      commit (runtime's commit_us)",
        &column(|s| s.commit),
        "",
    );
    let goal = format!(
        "<= {GOAL_BUILD_APPLY_MS} ms: {}",
        verdict(median(&build_apply) <= GOAL_BUILD_APPLY_MS)
    );
    row("(a) build + apply", &build_apply, &goal);
    row("(a) save -> new behaviour", &column(|s| s.save_to_new), "");
    row("(b) cargo build -p app (incremental)", &cargo_build, "");
    println!(
        "{:<44} {:>8.2}x {:>9} {:>9}   <= {GOAL_RATIO}x: {}",
        "ratio (a) build+apply / (b) cargo build",
        ratio,
        "",
        "",
        verdict(ratio <= GOAL_RATIO)
    );
    println!(
        "{:<44} {:>8.2}% {:>9} {:>9}   <= {GOAL_SIZE_PERCENT}%: {}",
        format!("patch size {patch_size:.0} B / host {host_size} B"),
        percent,
        "",
        "",
        verdict(percent <= GOAL_SIZE_PERCENT)
    );
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------------------------
// The fixture workspace and the tool, as in `tests/e2e_patch.rs`.

/// A copy of the fixture workspace in a temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
    target: PathBuf,
    tool: PathBuf,
}

impl Fixture {
    fn new(tool: PathBuf) -> Self {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::Builder::new()
            .prefix("hotpatch-bench-")
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
        // Not the e2e tests' target directory: its control socket is theirs.
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-fixture-target");
        let fixture = Fixture { dir, target, tool };
        assert!(
            fixture.socket().as_os_str().len() < 100,
            "the control socket path {} is too long for a Unix socket",
            fixture.socket().display()
        );
        fixture
    }

    /// Holds the fixture target directory (its base record and control socket) for this run:
    /// another run of this benchmark waits, instead of replacing the app under this one.
    fn lock_target(&self) -> std::fs::File {
        use std::os::fd::AsRawFd as _;
        std::fs::create_dir_all(&self.target).expect("creating the fixture target directory");
        let path = self.target.with_extension("lock");
        let file = std::fs::File::create(&path).expect("creating the lock file");
        // SAFETY: `flock` on a file descriptor this function owns; the lock lives as long as
        // the returned file.
        let locked = |flags| unsafe { libc::flock(file.as_raw_fd(), flags) } == 0;
        if !locked(libc::LOCK_EX | libc::LOCK_NB) {
            eprintln!("patch_cycle: waiting for another run ({})", path.display());
            assert!(locked(libc::LOCK_EX), "locking {}", path.display());
        }
        file
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn manifest(&self) -> PathBuf {
        self.root().join("Cargo.toml")
    }

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

    fn tool_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.tool);
        command
            .arg("hotpatch")
            .args(args)
            .current_dir(self.root())
            .env("CARGO_TARGET_DIR", &self.target)
            .env("FIXTURE_TICK_MS", TICK_MS);
        command
    }

    /// `cargo-hotpatch hotpatch ARGS`, run to completion; must succeed.
    fn tool(&self, args: &[&str]) -> ToolOutput {
        let output = self
            .tool_command(args)
            .stdin(Stdio::null())
            .output()
            .expect("running cargo-hotpatch");
        ToolOutput::new(format!("cargo hotpatch {}", args.join(" ")), output).success()
    }

    /// `cargo build -p app` with the environment the host build gives cargo (see `host.rs`).
    fn cargo_build(&self) -> ToolOutput {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .arg("build")
            .arg("--message-format=json-render-diagnostics")
            .arg("--manifest-path")
            .arg(self.manifest())
            .args(["--package", "app"])
            .current_dir(self.root())
            .env("CARGO_TARGET_DIR", &self.target)
            .env("RUSTC_WORKSPACE_WRAPPER", &self.tool)
            .env(
                "HOTPATCH_CAPTURE_DIR",
                self.target.join("hotpatch/dev/invocations"),
            )
            .stdin(Stdio::null())
            .output()
            .expect("running cargo build");
        ToolOutput::new("cargo build -p app".to_owned(), output).success()
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

/// What a finished command printed.
struct ToolOutput {
    command: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl ToolOutput {
    fn new(command: String, output: Output) -> Self {
        ToolOutput {
            command,
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
}

// ---------------------------------------------------------------------------------------------
// The running app.

/// `cargo hotpatch run -p app` with its app; both are killed when this is dropped.
struct RunningApp {
    tool: Child,
    /// Each line of the app's output with when it was read.
    lines: Receiver<(Instant, String)>,
    stderr: Arc<Mutex<String>>,
    socket: PathBuf,
    /// The app's pid, from `hello`.
    pid: Option<u32>,
    /// The last lines read, shown if the benchmark fails.
    recent: VecDeque<String>,
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
                if sender.send((Instant::now(), line)).is_err() {
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
            recent: VecDeque::new(),
        };
        app.next_line(Instant::now() + FIRST_BUILD, "the app's first tick");
        let Ok(Reply::Hello { pid, .. }) = request(&app.socket, &Request::Hello) else {
            panic!("`hello` on the control socket failed");
        };
        assert_eq!(
            parent_of(pid),
            Some(app.tool.id()),
            "the process answering on {} (pid {pid}) is not the app started here",
            app.socket.display()
        );
        app.pid = Some(pid);
        app
    }

    fn next_line(&mut self, deadline: Instant, waiting_for: &str) -> (Instant, String) {
        let timeout = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(timeout) {
            Ok((read, line)) => {
                if self.recent.len() == 5 {
                    self.recent.pop_front();
                }
                self.recent.push_back(line.clone());
                (read, line)
            }
            Err(RecvTimeoutError::Timeout) => panic!("timed out waiting for {waiting_for}"),
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the app's output ended while waiting for {waiting_for}")
            }
        }
    }

    /// What `run` and the app last said, for a failed benchmark.
    fn describe(&mut self) -> String {
        while let Ok((_, line)) = self.lines.try_recv() {
            if self.recent.len() == 5 {
                self.recent.pop_front();
            }
            self.recent.push_back(line);
        }
        let stderr = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        let start = (stderr.len().saturating_sub(4000)..stderr.len())
            .find(|&i| stderr.is_char_boundary(i))
            .unwrap_or(stderr.len());
        format!(
            "`cargo hotpatch run`: {:?}\n--- the app's last lines\n{}\n--- run's stderr (tail)\n{}",
            self.tool.try_wait(),
            Vec::from(self.recent.clone()).join("\n"),
            &stderr[start..]
        )
    }

    /// When the first line showing `version` was read.
    fn wait_for_version(&mut self, version: &str) -> Instant {
        let deadline = Instant::now() + NEW_VERSION;
        let field = format!("version={version}");
        loop {
            let (read, line) = self.next_line(deadline, &field);
            if line.split_whitespace().any(|word| word == field) {
                return read;
            }
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.describe());
        }
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
        // Then the tool, with whatever it started.
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
