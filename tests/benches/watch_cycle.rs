//! `cargo hotpatch watch` against rebuilding and restarting the app, side by side on one fixture
//! copy.
//!
//! Run it with `cargo bench -p hotreload-tests --bench watch_cycle` (set `WATCH_CYCLE_ITERATIONS`
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

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hotreload_tests::bench::TICK_MS;
use hotreload_tests::bench::{at_least, at_most, bench_fixture, iterations, measure, median, ms};
use hotreload_tests::bench::{print_figure, print_rows, CargoBuildOutput, Lines, ToolProcess};
use hotreload_tests::{children_of, locations, read_timed_lines, waits_for_arguments, Fixture};

/// Measured iterations of each phase unless `WATCH_CYCLE_ITERATIONS` says more.
const ITERATIONS: usize = 9;
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
    let iterations = iterations("WATCH_CYCLE_ITERATIONS", ITERATIONS);
    // Holds its target directory while it lives: another run waits.
    let fixture = bench_fixture(
        locations!(),
        "hotpatch-watch-bench-",
        "watch-fixture-target",
    );
    eprintln!(
        "watch_cycle: fixture in {}, target {}",
        fixture.root().display(),
        fixture.target().display()
    );
    let original = fixture.read(EDITED);

    // (a) watch patches each save into the running app.
    eprintln!("watch_cycle: (a) `cargo hotpatch watch -p app` (the first run builds tokio and the runtime)");
    let mut watch = Watch::start(&fixture);
    watch.settle();
    let (_, patched) = measure(
        "watch_cycle: (a)",
        iterations,
        |_, from, to| watch.cycle(&fixture, from, to),
        |sample| {
            format!(
                "save->new {:.1} ms (watch: {:.0} ms; debounce {:.1}, rustc {:.1}, checks {:.1}, link {:.1}, apply {:.1})",
                sample.save_to_new,
                sample.watch_total,
                sample.debounce,
                sample.rustc,
                sample.checks,
                sample.link,
                sample.apply
            )
        },
    );
    drop(watch);

    // (b) the same edits from the same text, rebuilt and restarted.
    fixture.replace_file(EDITED, &original);
    eprintln!("watch_cycle: (b) rebuild and restart: `cargo build -p app` of the original text");
    let executable = fixture.cargo_build().executable();
    let mut app = App::start(&fixture, &executable);
    app.wait_for_version("v1");
    let (warm_up, restarted) = measure(
        "watch_cycle: (b)",
        iterations,
        |_, from, to| restart_cycle(&fixture, &mut app, &executable, from, to),
        |sample| {
            format!(
                "save->new {:.1} ms (kill {:.1}, cargo build {:.1}, start {:.1})",
                sample.save_to_new, sample.kill, sample.cargo_build, sample.start
            )
        },
    );
    drop(app);
    fixture.replace_file(EDITED, &original);
    print_table(&patched, &restarted, &warm_up.recompiled);
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
    let recompiled = output.recompiled();
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
    let save_to_new_goal = at_most(median(&save_to_new), GOAL_SAVE_TO_NEW_MS, " ms");
    let title = format!(
        "watch cycle: {} + {} iterations after 1 warm-up each, app ticking every {TICK_MS} ms; (b)'s `cargo build` recompiled: {}",
        patched.len(),
        restarted.len(),
        recompiled.join(", ")
    );
    print_rows(
        &title,
        1,
        &[
            (
                "(a) watch: save -> new behaviour",
                save_to_new,
                &save_to_new_goal,
            ),
            (
                "      watch's total (first event -> applied)",
                a(|s| s.watch_total),
                "",
            ),
            ("      debounce", a(|s| s.debounce), ""),
            ("      rustc", a(|s| s.rustc), ""),
            ("      checks", a(|s| s.checks), ""),
            ("      link", a(|s| s.link), ""),
            ("      apply", a(|s| s.apply), ""),
            ("(b) rebuild + restart: save -> new behaviour", rebuild, ""),
            ("      kill the app", b(|s| s.kill), ""),
            (
                "      cargo build -p app (incremental)",
                b(|s| s.cargo_build),
                "",
            ),
            ("      start -> first line", b(|s| s.start), ""),
        ],
    );
    print_figure(
        "speed-up (b) / (a), medians",
        &format!("{speedup:.1}x"),
        &at_least(speedup, GOAL_SPEEDUP, "x"),
    );
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
// The processes.

/// `cargo hotpatch watch -p app` with its app; both are killed when this is dropped.
struct Watch {
    process: ToolProcess,
}

impl Watch {
    /// Starts `watch` and waits for the app's first tick and watch's `Watching`.
    fn start(fixture: &Fixture) -> Self {
        let mut watch = Watch {
            process: ToolProcess::start(fixture, "watch"),
        };
        watch.wait_for_stderr(0, false, |text| text.contains("Watching").then_some(()));
        watch
    }

    /// One save: the edit, the app's first line showing it, and watch's split.
    fn cycle(&mut self, fixture: &Fixture, from: &str, to: &str) -> Patched {
        let version = to.trim_matches('"');
        self.process.lines.drain();
        let mark = self.process.stderr_text().len();
        fixture.edit(EDITED, from, to);
        let saved = Instant::now();
        let shown = self.process.wait_for_version(version, saved + NEW_VERSION);
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
        let pid = self.process.hello();
        if Some(pid) != self.process.run.pid {
            panic!(
                "the app was restarted (pid {pid}), not patched\n{}",
                self.process.describe()
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
            let text = self.process.stderr_text();
            let said = text.get(from..).unwrap_or_default();
            if let Some(value) = found(said) {
                return value;
            }
            assert!(
                !strict || !(said.contains("error") || said.contains("warning:")),
                "watch reported a problem\n{}",
                self.process.describe()
            );
            assert!(
                Instant::now() < deadline,
                "timed out waiting on watch\n{}",
                self.process.describe()
            );
            self.process.lines.drain();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until watch has had no child but the app and its waiting compilers for a while: no
    /// rustc (its base functions compiled in the background, or a patch build) competes with the
    /// next edit.
    fn settle(&mut self) {
        let deadline = Instant::now() + NEW_VERSION;
        let mut quiet_since: Option<Instant> = None;
        loop {
            let busy = children_of(self.process.run.tool.id())
                .into_iter()
                .any(|child| Some(child) != self.process.run.pid && !waits_for_arguments(child));
            if busy {
                quiet_since = None;
            } else if quiet_since.get_or_insert_with(Instant::now).elapsed() >= QUIET {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "watch stayed busy\n{}",
                self.process.describe()
            );
            self.process.lines.drain();
            std::thread::sleep(Duration::from_millis(20));
        }
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
        let lines = Lines::new(read_timed_lines(
            child.stdout.take().expect("the app's stdout"),
        ));
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
