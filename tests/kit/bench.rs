//! What the benchmarks `patch_cycle` and `watch_cycle` add to the kit: measured iterations of
//! one-line edits, `cargo build -p app` as the host build runs it, the app's output lines with
//! when each was read, `cargo hotpatch run`/`watch` with those lines, and the table of figures.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::{read_timed_lines, Fixture, Locations, Profile, ToolOutput, ToolRun};

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

/// Runs `cycle(i, from, to)` for the warm-up edit of the version literal (`i` 0) and
/// `iterations` measured ones, printing each as `LABEL ...` with `summary` of a measured sample:
/// the warm-up's sample and the measured ones.
pub fn measure<S>(
    label: &str,
    iterations: usize,
    cycle: impl FnMut(usize, &str, &str) -> S,
    summary: impl Fn(&S) -> String,
) -> (S, Vec<S>) {
    measure_edits(label, iterations, versions, cycle, summary)
}

/// [`measure`] of the edits `edit(i)` (`(from, to)`) instead of the version literal's.
pub fn measure_edits<S>(
    label: &str,
    iterations: usize,
    edit: impl Fn(usize) -> (String, String),
    mut cycle: impl FnMut(usize, &str, &str) -> S,
    summary: impl Fn(&S) -> String,
) -> (S, Vec<S>) {
    let (from, to) = edit(0);
    let warm_up = cycle(0, &from, &to);
    eprintln!("{label} warm-up {from} -> {to} done");
    let mut samples = Vec::new();
    for i in 1..=iterations {
        let (from, to) = edit(i);
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
// The fixture workspace and cargo.

/// A copy of the fixture workspace in a temporary directory named `prefix...`, built in
/// `$CARGO_TARGET_TMPDIR/TARGET_DIR`: not the end-to-end tests' target directory nor another
/// benchmark's, whose control sockets are theirs. The app ticks every [`TICK_MS`].
pub fn bench_fixture(at: Locations, prefix: &str, target_dir: &str) -> Fixture {
    let mut fixture = Fixture::patchable(at, Profile::Dev, prefix, target_dir);
    fixture.set_env("FIXTURE_TICK_MS", TICK_MS);
    fixture
}

impl Fixture {
    /// `cargo build -p PACKAGE` (the fixture's, in its profile) with the environment the tool's
    /// host build gives cargo.
    pub fn cargo_build(&self) -> ToolOutput {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let release = self.profile() == Profile::Release;
        let output = Command::new(cargo)
            .arg("build")
            .arg("--message-format=json-render-diagnostics")
            .arg("--manifest-path")
            .arg(self.manifest())
            .args(["--package", self.package()])
            .args(self.profile().args())
            .args(cargo_hotpatch::host_config_args(release))
            .current_dir(self.root())
            .env("CARGO_TARGET_DIR", self.target())
            .env("RUSTC_WORKSPACE_WRAPPER", self.tool_path())
            .env(
                "HOTPATCH_CAPTURE_DIR",
                self.target()
                    .join("hotpatch")
                    .join(self.profile().name())
                    .join("invocations"),
            )
            .stdin(Stdio::null())
            .output()
            .expect("running cargo build");
        ToolOutput::of_command(format!("cargo build -p {}", self.package()), output).success()
    }
}

/// What the benchmarks read from a `cargo build --message-format=json...`.
pub trait CargoBuildOutput {
    /// The one executable it built.
    fn executable(&self) -> PathBuf;
    /// The crates a `cargo build` of an edit of the crate `crates[0]` compiled, checked to be it
    /// and perhaps the others of `crates` (its dependents): an incremental rebuild with the host
    /// build's environment.
    fn recompiled(&self, crates: &[&str]) -> Vec<String>;
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

    fn recompiled(&self, crates: &[&str]) -> Vec<String> {
        let recompiled = self
            .stderr
            .lines()
            .filter_map(|line| line.trim().strip_prefix("Compiling "))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .collect::<Vec<_>>();
        assert!(
            recompiled.iter().any(|name| name == crates[0]),
            "`cargo build` did not recompile the edited `{}`: {}",
            crates[0],
            self.describe()
        );
        assert!(
            recompiled.iter().all(|name| crates.contains(&name.as_str())),
            "`cargo build` recompiled more than {crates:?}, so it is no incremental rebuild with the host build's environment: {}",
            self.describe()
        );
        recompiled
    }
}

// ---------------------------------------------------------------------------------------------
// The processes.

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

/// `cargo hotpatch COMMAND -p app` (`run` or `watch`) with its app's lines, each with when it
/// was read; both are killed when this is dropped.
pub struct ToolProcess {
    pub run: ToolRun,
    /// The app's first line (the fixture's first tick, where the depot listens).
    pub first_line: String,
    /// The app's output.
    pub lines: Lines,
}

impl ToolProcess {
    /// Starts `cargo hotpatch COMMAND` and waits for the app's first line (its first tick).
    pub fn start(fixture: &Fixture, command: &'static str) -> Self {
        let (run, stdout) = ToolRun::start(fixture, command, &[]);
        let mut process = ToolProcess {
            run,
            first_line: String::new(),
            lines: Lines::new(read_timed_lines(stdout)),
        };
        match process.lines.next(Instant::now() + FIRST_BUILD) {
            Ok((_, line)) => process.first_line = line,
            Err(why) => panic!(
                "{why} waiting for the app's first line\n{}",
                process.describe()
            ),
        }
        process.run.adopt_app();
        process
    }

    /// The pid of the process answering on the control socket.
    pub fn hello(&self) -> u32 {
        crate::hello(&self.run.socket)
            .unwrap_or_else(|error| panic!("`hello` on the control socket failed: {error}"))
    }

    /// Everything the tool printed on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.run.stderr_text()
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
        format!(
            "`cargo hotpatch {command}`: {:?}\n--- the app's last lines\n{}\n--- {command}'s stderr (tail)\n{}",
            self.run.tool.try_wait(),
            self.lines.recent(),
            self.run.stderr_tail(),
            command = self.run.command
        )
    }
}

impl Drop for ToolProcess {
    fn drop(&mut self) {
        // The tool and the app end when `run` is dropped, after this.
        if std::thread::panicking() {
            eprintln!("{}", self.describe());
        }
    }
}
