//! `cargo hotpatch watch` against rebuilding and restarting the app, side by side on one fixture
//! copy.
//!
//! Run it with `cargo bench -p cargo-hotpatch --bench watch_cycle` (set `WATCH_CYCLE_ITERATIONS`
//! for more than the default 9 measured iterations). It copies `tests/fixtures/patchable` to a
//! temporary directory and makes the same one-line edits of the version literal in
//! `logic/src/lib.rs` (`"v1"` -> `"v2"` -> ...) twice, in two phases of one run:
//!
//! (a) with `cargo hotpatch watch -p app` running the app (ticking every 5 ms through
//!     `FIXTURE_TICK_MS`): the time from writing the file to the first line of the app showing
//!     the new version, with the split watch prints itself (`Patched logic in X (debounce D,
//!     rustc R, checks C, link L, apply A)`);
//! (b) with watch stopped and the file restored to its original text: for each edit, kill the
//!     app, `cargo build -p app` with the host build's environment (an incremental rebuild of
//!     `logic` and `app` only, in the same target directory), start the built binary, and time
//!     from writing the file to its first line showing the new version.
//!
//! The first edit of each phase is a warm-up and is not counted. The two phases share the
//! control socket path, so (b) starts after watch and its app are gone. The fixture builds use
//! `$CARGO_TARGET_TMPDIR/watch-fixture-target`; the first run compiles tokio and the runtime
//! there once. It prints a table with the goals next to the numbers, then kills what it started.
//! A benchmark of wall times of subprocesses, so no criterion (`harness = false`).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotreload_runtime::control::protocol::{Reply, Request, Response};

/// Measured iterations of each phase unless `WATCH_CYCLE_ITERATIONS` says more.
const ITERATIONS: usize = 9;
/// The app's tick interval: a commit waits for the next safe point, once per tick.
const TICK_MS: &str = "5";
/// The first build may compile tokio and the runtime from scratch.
const FIRST_BUILD: Duration = Duration::from_secs(600);
/// How long an edit may take to show in the app's output, and watch to settle.
const NEW_VERSION: Duration = Duration::from_secs(60);
/// How long watch must have no child but the app before the next edit.
const QUIET: Duration = Duration::from_millis(500);
/// The file every edit changes.
const EDITED: &str = "logic/src/lib.rs";

/// Goals printed next to the numbers.
const GOAL_SAVE_TO_NEW_MS: f64 = 300.0;
const GOAL_SPEEDUP: f64 = 3.0;

fn main() {
    let iterations = std::env::var("WATCH_CYCLE_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ITERATIONS)
        .max(1);
    // Built by cargo for this benchmark (in the bench profile); canonical, as the host build
    // names itself (`current_exe`) in `RUSTC_WORKSPACE_WRAPPER`, so (b)'s `cargo build` has the
    // same environment as watch's host build and rebuilds incrementally.
    let tool = std::fs::canonicalize(env!("CARGO_BIN_EXE_cargo-hotpatch"))
        .expect("the cargo-hotpatch binary");
    let fixture = Fixture::new(tool);
    let _exclusive = fixture.lock_target();
    eprintln!(
        "watch_cycle: fixture in {}, target {}",
        fixture.root().display(),
        fixture.target.display()
    );
    let original = fixture.read(EDITED);

    // (a) watch patches each save into the running app.
    eprintln!("watch_cycle: (a) `cargo hotpatch watch -p app` (the first run builds tokio and the runtime)");
    let mut watch = Watch::start(&fixture);
    watch.settle();
    let mut patched = Vec::new();
    for i in 0..=iterations {
        let (from, to) = versions(i);
        let sample = watch.cycle(&fixture, &from, &to);
        if i == 0 {
            eprintln!("watch_cycle: (a) warm-up {from} -> {to} done");
            continue;
        }
        eprintln!(
            "watch_cycle: (a) {i}/{iterations} {from} -> {to}: save->new {:.1} ms (watch: {:.0} ms; debounce {:.1}, rustc {:.1}, checks {:.1}, link {:.1}, apply {:.1})",
            sample.save_to_new,
            sample.watch_total,
            sample.debounce,
            sample.rustc,
            sample.checks,
            sample.link,
            sample.apply
        );
        patched.push(sample);
    }
    drop(watch);

    // (b) the same edits from the same text, rebuilt and restarted.
    fixture.write(EDITED, &original);
    eprintln!("watch_cycle: (b) rebuild and restart: `cargo build -p app` of the original text");
    let executable = fixture.cargo_build().executable();
    let mut app = App::start(&fixture, &executable);
    app.wait_for_version("v1");
    let mut restarted = Vec::new();
    let mut recompiled = Vec::new();
    for i in 0..=iterations {
        let (from, to) = versions(i);
        let sample = restart_cycle(&fixture, &mut app, &executable, &from, &to);
        if i == 0 {
            eprintln!("watch_cycle: (b) warm-up {from} -> {to} done");
            recompiled = sample.recompiled;
            continue;
        }
        eprintln!(
            "watch_cycle: (b) {i}/{iterations} {from} -> {to}: save->new {:.1} ms (kill {:.1}, cargo build {:.1}, start {:.1})",
            sample.save_to_new, sample.kill, sample.cargo_build, sample.start
        );
        restarted.push(sample);
    }
    drop(app);
    fixture.write(EDITED, &original);
    print_table(&patched, &restarted, &recompiled);
}

/// The `i`th edit: `"v{i+1}"` -> `"v{i+2}"`.
fn versions(i: usize) -> (String, String) {
    (format!("\"v{}\"", i + 1), format!("\"v{}\"", i + 2))
}

/// One save patched by watch; times in milliseconds.
struct Patched {
    /// Writing the file to the app's first line showing the new version.
    save_to_new: f64,
    /// What watch prints: its first event to the applied patch, and the split.
    watch_total: f64,
    debounce: f64,
    rustc: f64,
    checks: f64,
    link: f64,
    apply: f64,
}

/// One save rebuilt and restarted; times in milliseconds.
struct Restarted {
    /// Writing the file to the new app's first line showing the new version.
    save_to_new: f64,
    kill: f64,
    cargo_build: f64,
    /// Starting the binary to its first line.
    start: f64,
    /// The crates `cargo build` compiled.
    recompiled: Vec<String>,
}

fn restart_cycle(
    fixture: &Fixture,
    app: &mut App,
    executable: &Path,
    from: &str,
    to: &str,
) -> Restarted {
    let version = to.trim_matches('"');
    fixture.edit(EDITED, from, to);
    let saved = Instant::now();
    app.stop();
    let killed = Instant::now();
    let output = fixture.cargo_build();
    let built = Instant::now();
    *app = App::start(fixture, executable);
    let shown = app.wait_for_version(version);
    assert_eq!(
        output.executable(),
        executable,
        "`cargo build` built another binary"
    );
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
    let sample = Restarted {
        save_to_new: ms(shown.saturating_duration_since(saved)),
        kill: ms(killed.saturating_duration_since(saved)),
        cargo_build: ms(built.saturating_duration_since(killed)),
        start: ms(shown.saturating_duration_since(built)),
        recompiled,
    };
    std::thread::sleep(QUIET);
    sample
}

fn print_table(patched: &[Patched], restarted: &[Restarted], recompiled: &[String]) {
    let a = |f: fn(&Patched) -> f64| patched.iter().map(f).collect::<Vec<f64>>();
    let b = |f: fn(&Restarted) -> f64| restarted.iter().map(f).collect::<Vec<f64>>();
    let save_to_new = a(|s| s.save_to_new);
    let rebuild = b(|s| s.save_to_new);
    let speedup = median(&rebuild) / median(&save_to_new);
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };

    println!();
    println!(
        "watch cycle: {} + {} iterations after 1 warm-up each, app ticking every {TICK_MS} ms; (b)'s `cargo build` recompiled: {}",
        patched.len(),
        restarted.len(),
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
            "{name:<44} {:>9.1} {min:>9.1} {max:>9.1}   {goal}",
            median(values)
        );
    };
    let goal = format!(
        "<= {GOAL_SAVE_TO_NEW_MS} ms: {}",
        verdict(median(&save_to_new) <= GOAL_SAVE_TO_NEW_MS)
    );
    row("(a) watch: save -> new behaviour", &save_to_new, &goal);
    row(
        "      watch's total (first event -> applied)",
        &a(|s| s.watch_total),
        "",
    );
    row("      debounce", &a(|s| s.debounce), "");
    row("      rustc", &a(|s| s.rustc), "");
    row("      checks", &a(|s| s.checks), "");
    row("      link", &a(|s| s.link), "");
    row("      apply", &a(|s| s.apply), "");
    row("(b) rebuild + restart: save -> new behaviour", &rebuild, "");
    row("      kill the app", &b(|s| s.kill), "");
    row(
        "      cargo build -p app (incremental)",
        &b(|s| s.cargo_build),
        "",
    );
    row("      start -> first line", &b(|s| s.start), "");
    println!(
        "{:<44} {:>8.1}x {:>9} {:>9}   >= {GOAL_SPEEDUP}x: {}",
        "speed-up (b) / (a), medians",
        speedup,
        "",
        "",
        verdict(speedup >= GOAL_SPEEDUP)
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

/// A duration as `{:.0?}` prints it (`850µs`, `231ms`, `1s`, `1.2s`), in milliseconds.
fn parse_duration_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "ns" => 1e-6,
        "µs" | "us" | "μs" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" | "min" => 60e3,
        _ => return None,
    };
    Some(number * scale)
}

/// The split of watch's `Patched CRATES in X (debounce D, rustc R, checks C, link L, apply A)`.
fn parse_patched(line: &str) -> Option<Patched> {
    let rest = line.trim().strip_prefix("Patched")?.trim();
    let (head, split) = rest.split_once(" (")?;
    let (_crates, total) = head.rsplit_once(" in ")?;
    let split = split.trim().strip_suffix(')')?;
    let field = |name: &str| {
        split.split(',').find_map(|part| {
            let (key, value) = part.trim().split_once(' ')?;
            (key == name).then(|| parse_duration_ms(value))?
        })
    };
    Some(Patched {
        save_to_new: f64::NAN,
        watch_total: parse_duration_ms(total)?,
        debounce: field("debounce")?,
        rustc: field("rustc")?,
        checks: field("checks")?,
        link: field("link")?,
        apply: field("apply")?,
    })
}

// ---------------------------------------------------------------------------------------------
// The fixture workspace and the tool, as in `patch_cycle.rs`.

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
            .prefix("hotpatch-watch-bench-")
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
        // Neither the e2e tests' nor patch_cycle's target directory: their control sockets are
        // theirs.
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("watch-fixture-target");
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
            eprintln!("watch_cycle: waiting for another run ({})", path.display());
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

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.root().join(file)).expect("a fixture source file")
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.root().join(file), text).expect("writing a fixture source file");
    }

    /// Replaces `from` (which must occur) by `to` in a fixture source file, in one write.
    fn edit(&self, file: &str, from: &str, to: &str) {
        let text = self.read(file);
        assert!(
            text.contains(from),
            "{file} does not contain `{from}`:\n{text}"
        );
        self.write(file, &text.replace(from, to));
    }

    /// `cargo-hotpatch hotpatch ARGS`, not yet started.
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

    /// The one executable a `cargo build --message-format=json...` built.
    fn executable(&self) -> PathBuf {
        let executables: Vec<PathBuf> = self
            .stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|message| message["reason"] == "compiler-artifact")
            .filter_map(|message| message["executable"].as_str().map(PathBuf::from))
            .collect();
        match executables.as_slice() {
            [one] => one.clone(),
            _ => panic!(
                "expected one executable, got {executables:?}: {}",
                self.describe()
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The processes.

/// Reads `stdout` line by line on a thread, each line with when it was read.
fn read_lines(stdout: ChildStdout) -> Receiver<(Instant, String)> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    lines
}

/// A process's output lines, with the last few kept for a failed benchmark.
struct Lines {
    lines: Receiver<(Instant, String)>,
    recent: VecDeque<String>,
}

impl Lines {
    fn new(lines: Receiver<(Instant, String)>) -> Self {
        Lines {
            lines,
            recent: VecDeque::new(),
        }
    }

    fn keep(&mut self, line: &str) {
        if self.recent.len() == 5 {
            self.recent.pop_front();
        }
        self.recent.push_back(line.to_owned());
    }

    /// The next line, with when it was read, or why there is none.
    fn next(&mut self, deadline: Instant) -> Result<(Instant, String), String> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(timeout) {
            Ok((read, line)) => {
                self.keep(&line);
                Ok((read, line))
            }
            Err(RecvTimeoutError::Timeout) => Err("timed out".to_owned()),
            Err(RecvTimeoutError::Disconnected) => Err("the output ended".to_owned()),
        }
    }

    /// Every line already read.
    fn drain(&mut self) {
        while let Ok((_, line)) = self.lines.try_recv() {
            self.keep(&line);
        }
    }

    /// When the first line showing `version` was read, or why none was.
    fn wait_for_version(&mut self, version: &str, deadline: Instant) -> Result<Instant, String> {
        let field = format!("version={version}");
        loop {
            let (read, line) = self.next(deadline)?;
            if line.split_whitespace().any(|word| word == field) {
                return Ok(read);
            }
        }
    }

    fn recent(&self) -> String {
        Vec::from(self.recent.clone()).join("\n")
    }
}

/// `cargo hotpatch watch -p app` with its app; both are killed when this is dropped.
struct Watch {
    tool: Child,
    lines: Lines,
    stderr: Arc<Mutex<String>>,
    socket: PathBuf,
    /// The app's pid, from `hello`.
    pid: Option<u32>,
}

impl Watch {
    /// Starts `watch` and waits for the app's first tick and watch's `Watching`.
    fn start(fixture: &Fixture) -> Self {
        let mut tool = fixture
            .tool_command(&[
                "watch",
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
            .expect("starting `cargo hotpatch watch`");
        let lines = Lines::new(read_lines(tool.stdout.take().expect("watch's stdout")));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut tool_stderr = tool.stderr.take().expect("watch's stderr");
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
        let mut watch = Watch {
            tool,
            lines,
            stderr,
            socket: fixture.socket(),
            pid: None,
        };
        if let Err(why) = watch.lines.next(Instant::now() + FIRST_BUILD) {
            panic!(
                "{why} waiting for the app's first tick\n{}",
                watch.describe()
            );
        }
        let pid = watch.hello();
        assert_eq!(
            parent_of(pid),
            Some(watch.tool.id()),
            "the process answering on {} (pid {pid}) is not the app started by watch",
            watch.socket.display()
        );
        watch.pid = Some(pid);
        watch.wait_for_stderr(0, false, |text| text.contains("Watching").then_some(()));
        watch
    }

    fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn hello(&self) -> u32 {
        match request(&self.socket, &Request::Hello) {
            Ok(Reply::Hello { pid, .. }) => pid,
            other => panic!("`hello` on the control socket failed: {other:?}"),
        }
    }

    /// One save: the edit, the app's first line showing it, and watch's split.
    fn cycle(&mut self, fixture: &Fixture, from: &str, to: &str) -> Patched {
        let version = to.trim_matches('"');
        self.lines.drain();
        let mark = self.stderr_text().len();
        fixture.edit(EDITED, from, to);
        let saved = Instant::now();
        let shown = match self.lines.wait_for_version(version, saved + NEW_VERSION) {
            Ok(shown) => shown,
            Err(why) => panic!("{why} waiting for version={version}\n{}", self.describe()),
        };
        let mut sample = self.wait_for_stderr(mark, true, |said| {
            let line = said
                .lines()
                .find(|line| line.trim().starts_with("Patched "))?;
            // Only a whole line.
            said.contains(&format!("{line}\n")).then_some(())?;
            Some(
                parse_patched(line).unwrap_or_else(|| panic!("cannot parse watch's line {line:?}")),
            )
        });
        sample.save_to_new = ms(shown.saturating_duration_since(saved));
        let pid = self.hello();
        if Some(pid) != self.pid {
            panic!(
                "the app was restarted (pid {pid}), not patched\n{}",
                self.describe()
            );
        }
        self.settle();
        sample
    }

    /// Waits until watch's stderr after `from` bytes gives `found` something; if `strict`,
    /// panics on what would spoil the measurement (an error, a warning such as a restart).
    fn wait_for_stderr<T>(
        &mut self,
        from: usize,
        strict: bool,
        found: impl Fn(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + NEW_VERSION;
        loop {
            let text = self.stderr_text();
            let said = text.get(from..).unwrap_or_default();
            if let Some(value) = found(said) {
                return value;
            }
            assert!(
                !strict || !(said.contains("error") || said.contains("warning:")),
                "watch reported a problem\n{}",
                self.describe()
            );
            assert!(
                Instant::now() < deadline,
                "timed out waiting on watch\n{}",
                self.describe()
            );
            self.lines.drain();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until watch has had no child but the app for a while: no rustc (its base functions
    /// compiled in the background, or a patch build) competes with the next edit.
    fn settle(&mut self) {
        let deadline = Instant::now() + NEW_VERSION;
        let mut quiet_since: Option<Instant> = None;
        loop {
            let busy = children_of(self.tool.id())
                .into_iter()
                .any(|child| Some(child) != self.pid);
            if busy {
                quiet_since = None;
            } else if quiet_since.get_or_insert_with(Instant::now).elapsed() >= QUIET {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "watch stayed busy\n{}",
                self.describe()
            );
            self.lines.drain();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What watch and the app last said, for a failed benchmark.
    fn describe(&mut self) -> String {
        self.lines.drain();
        let stderr = self.stderr_text();
        let start = (stderr.len().saturating_sub(4000)..stderr.len())
            .find(|&i| stderr.is_char_boundary(i))
            .unwrap_or(stderr.len());
        format!(
            "`cargo hotpatch watch`: {:?}\n--- the app's last lines\n{}\n--- watch's stderr (tail)\n{}",
            self.tool.try_wait(),
            self.lines.recent(),
            &stderr[start..]
        )
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.describe());
        }
        // The app: its pid from `hello` (or the one noted at start), killed only if it is
        // watch's child.
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
        // Then watch, with whatever it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.tool.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.tool.kill();
        let _ = self.tool.wait();
    }
}

/// The app binary started directly, as a restart after a rebuild does; killed when dropped.
struct App {
    child: Option<Child>,
    lines: Lines,
}

impl App {
    /// Starts `executable` with the environment watch gives the app (its control socket, the
    /// bench's tick), without waiting for it.
    fn start(fixture: &Fixture, executable: &Path) -> Self {
        let mut command = Command::new(executable);
        command
            .current_dir(fixture.root())
            .env("HOTRELOAD_CONTROL_SOCKET", fixture.socket())
            .env("FIXTURE_TICK_MS", TICK_MS)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // SAFETY: `prctl(PR_SET_PDEATHSIG)` is async-signal-safe and touches no memory of the
        // parent; it runs in the child between fork and exec. The app dies with the benchmark.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", executable.display()));
        let lines = Lines::new(read_lines(child.stdout.take().expect("the app's stdout")));
        App {
            child: Some(child),
            lines,
        }
    }

    /// When the first line showing `version` was read.
    fn wait_for_version(&mut self, version: &str) -> Instant {
        match self
            .lines
            .wait_for_version(version, Instant::now() + NEW_VERSION)
        {
            Ok(shown) => shown,
            Err(why) => panic!(
                "{why} waiting for version={version}; the app's last lines:\n{}",
                self.lines.recent()
            ),
        }
    }

    /// Kills the app and waits for it to be gone.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The parent pid of `pid`, from `/proc`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The processes whose parent is `pid`, from `/proc`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| parent_of(child) == Some(pid))
        .collect()
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
