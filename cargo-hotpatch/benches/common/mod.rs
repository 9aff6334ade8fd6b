//! Helpers shared by the benchmarks `patch_cycle` and `watch_cycle`: a copy of the fixture
//! workspace `tests/fixtures/patchable` with a target directory of the benchmark's own, the tool
//! run on it, `cargo build -p app` as the host build runs it, the tool's long-running commands
//! (`run`, `watch`) with the app's output lines, and the table's statistics.
//!
//! What is the same as in the end-to-end tests (the fixture copy, `/proc` parents, the control
//! socket request) comes from `tests/common`.
//!
//! Each benchmark compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hotreload_runtime::control::protocol::{Reply, Request};

#[path = "../../tests/common/mod.rs"]
mod test_common;

// Each benchmark uses part of these.
#[allow(unused_imports)]
pub use test_common::{
    children_of, collect_output, copy_patchable_fixture, parent_of, request, stop_tool_and_app,
    waits_for_arguments, ToolOutput,
};

/// The app's tick interval: a commit waits for the next safe point, once per tick.
pub const TICK_MS: &str = "5";
/// The first build may compile tokio and the runtime from scratch.
pub const FIRST_BUILD: Duration = Duration::from_secs(600);

/// Measured iterations: `var` if set to a number, else `default`; at least one.
pub fn iterations(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
        .max(1)
}

/// The `i`th edit of the version literal: `"v{i+1}"` -> `"v{i+2}"`.
pub fn versions(i: usize) -> (String, String) {
    (format!("\"v{}\"", i + 1), format!("\"v{}\"", i + 2))
}

/// Runs `cycle(i, from, to)` for the warm-up edit (`i` 0) and `iterations` measured ones,
/// printing each as `LABEL ...` with `summary` of a measured sample: the warm-up's sample and the
/// measured ones.
pub fn measure<S>(
    label: &str,
    iterations: usize,
    mut cycle: impl FnMut(usize, &str, &str) -> S,
    summary: impl Fn(&S) -> String,
) -> (S, Vec<S>) {
    let (from, to) = versions(0);
    let warm_up = cycle(0, &from, &to);
    eprintln!("{label} warm-up {from} -> {to} done");
    let mut samples = Vec::new();
    for i in 1..=iterations {
        let (from, to) = versions(i);
        let sample = cycle(i, &from, &to);
        eprintln!(
            "{label} {i}/{iterations} {from} -> {to}: {}",
            summary(&sample)
        );
        samples.push(sample);
    }
    (warm_up, samples)
}

// ---------------------------------------------------------------------------------------------
// The table.

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    }
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// The goal column of a figure that should be at most `goal` (`<= 300 ms: met`).
pub fn at_most(value: f64, goal: f64, unit: &str) -> String {
    format!("<= {goal}{unit}: {}", verdict(value <= goal))
}

/// The goal column of a figure that should be at least `goal` (`>= 3x: MISSED`).
pub fn at_least(value: f64, goal: f64, unit: &str) -> String {
    format!(">= {goal}{unit}: {}", verdict(value >= goal))
}

/// After a blank line, the table's title, its header line and a row per `(name, values, goal)`:
/// the median, min and max of `values` with `decimals` decimals.
pub fn print_rows(title: &str, decimals: usize, rows: &[(&str, Vec<f64>, &str)]) {
    println!();
    println!("{title}");
    println!(
        "{:<44} {:>9} {:>9} {:>9}   goal",
        "(ms)", "median", "min", "max"
    );
    for (name, values, goal) in rows {
        let (min, max) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        println!(
            "{name:<44} {:>9.decimals$} {min:>9.decimals$} {max:>9.decimals$}   {goal}",
            median(values)
        );
    }
}

/// A line of the table with one figure (`0.73x`, `2.09%`) in the median column.
pub fn print_figure(name: &str, figure: &str, goal: &str) {
    println!("{name:<44} {figure:>9} {:>9} {:>9}   {goal}", "", "");
}

// ---------------------------------------------------------------------------------------------
// The fixture workspace and the tool.

/// A copy of the fixture workspace in a temporary directory.
pub struct Fixture {
    dir: tempfile::TempDir,
    pub target: PathBuf,
    tool: PathBuf,
    /// The benchmark's name, for its messages.
    bench: &'static str,
}

impl Fixture {
    /// A fixture copy in a temporary directory named `prefix...`, built in
    /// `$CARGO_TARGET_TMPDIR/TARGET_DIR`.
    pub fn new(bench: &'static str, prefix: &str, target_dir: &str) -> Self {
        // The tool binary: cargo builds it (in the bench profile, as `cargo install` would)
        // before running the benchmark and names it in `CARGO_BIN_EXE_cargo-hotpatch`, so there
        // is no need to run `cargo build -p cargo-hotpatch` from here. Canonical, as the host
        // build names itself (`current_exe`) in `RUSTC_WORKSPACE_WRAPPER`, so `cargo_build` has
        // the same environment as the tool's host build and rebuilds incrementally.
        let tool = std::fs::canonicalize(env!("CARGO_BIN_EXE_cargo-hotpatch"))
            .expect("the cargo-hotpatch binary");
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("a temporary directory");
        copy_patchable_fixture(dir.path());
        // Not the e2e tests' target directory nor another benchmark's: their control sockets
        // are theirs.
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join(target_dir);
        let fixture = Fixture {
            dir,
            target,
            tool,
            bench,
        };
        assert!(
            fixture.socket().as_os_str().len() < 100,
            "the control socket path {} is too long for a Unix socket",
            fixture.socket().display()
        );
        fixture
    }

    /// Holds the fixture target directory (its base record and control socket) for this run:
    /// another run of this benchmark waits, instead of replacing the app under this one.
    pub fn lock_target(&self) -> std::fs::File {
        use std::os::fd::AsRawFd as _;
        std::fs::create_dir_all(&self.target).expect("creating the fixture target directory");
        let path = self.target.with_extension("lock");
        let file = std::fs::File::create(&path).expect("creating the lock file");
        // SAFETY: `flock` on a file descriptor this function owns; the lock lives as long as
        // the returned file.
        let locked = |flags| unsafe { libc::flock(file.as_raw_fd(), flags) } == 0;
        if !locked(libc::LOCK_EX | libc::LOCK_NB) {
            eprintln!(
                "{}: waiting for another run ({})",
                self.bench,
                path.display()
            );
            assert!(locked(libc::LOCK_EX), "locking {}", path.display());
        }
        file
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn manifest(&self) -> PathBuf {
        self.root().join("Cargo.toml")
    }

    pub fn socket(&self) -> PathBuf {
        self.target.join("hotpatch/dev/control.sock")
    }

    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.root().join(file)).expect("a fixture source file")
    }

    pub fn write(&self, file: &str, text: &str) {
        std::fs::write(self.root().join(file), text).expect("writing a fixture source file");
    }

    /// Replaces `from` (which must occur) by `to` in a fixture source file, in one write.
    pub fn edit(&self, file: &str, from: &str, to: &str) {
        let text = self.read(file);
        assert!(
            text.contains(from),
            "{file} does not contain `{from}`:\n{text}"
        );
        self.write(file, &text.replace(from, to));
    }

    /// `cargo-hotpatch hotpatch ARGS`, not yet started.
    pub fn tool_command(&self, args: &[&str]) -> Command {
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
    pub fn tool(&self, args: &[&str]) -> ToolOutput {
        let output = self
            .tool_command(args)
            .stdin(Stdio::null())
            .output()
            .expect("running cargo-hotpatch");
        ToolOutput::new(args, output).success()
    }

    /// `cargo build -p app` with the environment the host build gives cargo (see `host.rs`).
    pub fn cargo_build(&self) -> ToolOutput {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .arg("build")
            .arg("--message-format=json-render-diagnostics")
            .arg("--manifest-path")
            .arg(self.manifest())
            .args(["--package", "app"])
            .args(cargo_hotpatch::host_config_args(false))
            .current_dir(self.root())
            .env("CARGO_TARGET_DIR", &self.target)
            .env("RUSTC_WORKSPACE_WRAPPER", &self.tool)
            // As `cargo hotpatch run` builds the host (see the tool's `host::build`).
            .env(
                "CARGO_PROFILE_DEV_BUILD_OVERRIDE_OPT_LEVEL",
                std::env::var("CARGO_PROFILE_DEV_BUILD_OVERRIDE_OPT_LEVEL")
                    .unwrap_or_else(|_| "3".into()),
            )
            .env(
                "HOTPATCH_CAPTURE_DIR",
                self.target.join("hotpatch/dev/invocations"),
            )
            .stdin(Stdio::null())
            .output()
            .expect("running cargo build");
        ToolOutput::of_command("cargo build -p app".to_owned(), output).success()
    }
}

/// What the benchmarks read from a `cargo build --message-format=json...`.
pub trait CargoBuildOutput {
    /// The one executable it built.
    fn executable(&self) -> PathBuf;
    /// The crates a `cargo build` of an edit of `logic` compiled, checked to be `logic` and
    /// perhaps `app`: an incremental rebuild with the host build's environment.
    fn recompiled(&self) -> Vec<String>;
}

impl CargoBuildOutput for ToolOutput {
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

    fn recompiled(&self) -> Vec<String> {
        let recompiled = self
            .stderr
            .lines()
            .filter_map(|line| line.trim().strip_prefix("Compiling "))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .collect::<Vec<_>>();
        assert!(
            recompiled.iter().any(|name| name == "logic"),
            "`cargo build` did not recompile the edited `logic`: {}",
            self.describe()
        );
        assert!(
            recompiled.iter().all(|name| name == "logic" || name == "app"),
            "`cargo build` recompiled more than `logic` and `app`, so it is no incremental rebuild with the host build's environment: {}",
            self.describe()
        );
        recompiled
    }
}

// ---------------------------------------------------------------------------------------------
// The processes.

/// Reads `stdout` line by line on a thread, each line with when it was read.
pub fn read_lines(stdout: ChildStdout) -> Receiver<(Instant, String)> {
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
pub struct Lines {
    lines: Receiver<(Instant, String)>,
    recent: VecDeque<String>,
}

impl Lines {
    pub fn new(lines: Receiver<(Instant, String)>) -> Self {
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
    pub fn next(&mut self, deadline: Instant) -> Result<(Instant, String), String> {
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
    pub fn drain(&mut self) {
        while let Ok((_, line)) = self.lines.try_recv() {
            self.keep(&line);
        }
    }

    /// When the first line showing `version` was read, or why none was.
    pub fn wait_for_version(
        &mut self,
        version: &str,
        deadline: Instant,
    ) -> Result<Instant, String> {
        let field = format!("version={version}");
        loop {
            let (read, line) = self.next(deadline)?;
            if line.split_whitespace().any(|word| word == field) {
                return Ok(read);
            }
        }
    }

    pub fn recent(&self) -> String {
        Vec::from(self.recent.clone()).join("\n")
    }
}

/// `cargo hotpatch COMMAND -p app` (`run` or `watch`) with its app; both are killed when this
/// is dropped.
pub struct ToolProcess {
    /// `run` or `watch`.
    command: &'static str,
    pub tool: Child,
    /// The app's output.
    pub lines: Lines,
    stderr: Arc<Mutex<String>>,
    socket: PathBuf,
    /// The app's pid, from `hello`.
    pub pid: Option<u32>,
}

impl ToolProcess {
    /// Starts `cargo hotpatch COMMAND` and waits for the app's first tick.
    pub fn start(fixture: &Fixture, command: &'static str) -> Self {
        let mut tool = fixture
            .tool_command(&[
                command,
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
            .unwrap_or_else(|error| panic!("starting `cargo hotpatch {command}`: {error}"));
        let lines = Lines::new(read_lines(tool.stdout.take().expect("the tool's stdout")));
        let stderr = collect_output(tool.stderr.take().expect("the tool's stderr"));
        let mut process = ToolProcess {
            command,
            tool,
            lines,
            stderr,
            socket: fixture.socket(),
            pid: None,
        };
        if let Err(why) = process.lines.next(Instant::now() + FIRST_BUILD) {
            panic!(
                "{why} waiting for the app's first tick\n{}",
                process.describe()
            );
        }
        let pid = process.hello();
        assert_eq!(
            parent_of(pid),
            Some(process.tool.id()),
            "the process answering on {} (pid {pid}) is not the app started by `{command}`",
            process.socket.display()
        );
        process.pid = Some(pid);
        process
    }

    /// The pid of the process answering on the control socket.
    pub fn hello(&self) -> u32 {
        match request(&self.socket, &Request::Hello) {
            Ok(Reply::Hello { pid, .. }) => pid,
            other => panic!("`hello` on the control socket failed: {other:?}"),
        }
    }

    /// Everything the tool printed on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// When the first line showing `version` was read; it must be before `deadline`.
    pub fn wait_for_version(&mut self, version: &str, deadline: Instant) -> Instant {
        match self.lines.wait_for_version(version, deadline) {
            Ok(shown) => shown,
            Err(why) => panic!("{why} waiting for version={version}\n{}", self.describe()),
        }
    }

    /// What the tool and the app last said, for a failed benchmark.
    pub fn describe(&mut self) -> String {
        self.lines.drain();
        let stderr = self.stderr_text();
        let start = (stderr.len().saturating_sub(4000)..stderr.len())
            .find(|&i| stderr.is_char_boundary(i))
            .unwrap_or(stderr.len());
        format!(
            "`cargo hotpatch {command}`: {:?}\n--- the app's last lines\n{}\n--- {command}'s stderr (tail)\n{}",
            self.tool.try_wait(),
            self.lines.recent(),
            &stderr[start..],
            command = self.command
        )
    }
}

impl Drop for ToolProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.describe());
        }
        stop_tool_and_app(&mut self.tool, &self.socket, self.pid);
    }
}
