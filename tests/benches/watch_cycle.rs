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
//! (a') the same as (a) from the original text, with the app also appending a line per tick to a
//!     log file in the workspace root (`FIXTURE_LOG`), as apps that keep logs, saves or
//!     databases in their workspace do: watch must neither wait for nor patch on its writes;
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
use hotreload_tests::bench::{print_figure, print_rows, CargoBuildOutput, Lines};
use hotreload_tests::watch::QUIET;
use hotreload_tests::watch::{describe_patched, split_rows, Patched, Watch};
use hotreload_tests::{locations, read_timed_lines, Fixture};

/// Measured iterations of each phase unless `WATCH_CYCLE_ITERATIONS` says more.
const ITERATIONS: usize = 9;
/// How long an edit may take to show in the app's output, and watch to settle.
const NEW_VERSION: Duration = Duration::from_secs(60);
/// The file every edit changes.
const EDITED: &str = "logic/src/lib.rs";

/// Goals printed next to the numbers.
const GOAL_SAVE_TO_NEW_MS: f64 = 300.0;
const GOAL_SPEEDUP: f64 = 3.0;

fn main() {
    let iterations = iterations("WATCH_CYCLE_ITERATIONS", ITERATIONS);
    // Holds its target directory while it lives: another run waits.
    let mut fixture = bench_fixture(
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
        |_, from, to| watch_cycle(&mut watch, &fixture, from, to),
        describe_patched,
    );
    drop(watch);

    // (a') the same with the app writing its log inside its workspace.
    fixture.replace_file(EDITED, &original);
    let logging = measure_with_a_log(&mut fixture, iterations);

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
    print_table(&patched, &logging, &restarted, &warm_up.recompiled);
}

/// Phase (a'): watch patching the same edits while the app appends to a log in the workspace
/// root; panics if watch patched anything else than the edits.
fn measure_with_a_log(fixture: &mut Fixture, iterations: usize) -> Vec<Patched> {
    let log = fixture.root().join("app.log");
    fixture.set_env("FIXTURE_LOG", log.to_str().expect("a UTF-8 path"));
    eprintln!(
        "watch_cycle: (a') `cargo hotpatch watch -p app`, the app logging to {}",
        log.display()
    );
    let mut watch = Watch::start(fixture);
    watch.settle();
    let (_, logging) = measure(
        "watch_cycle: (a')",
        iterations,
        |_, from, to| watch_cycle(&mut watch, fixture, from, to),
        describe_patched,
    );
    let said = watch.process.stderr_text();
    drop(watch);
    assert!(
        std::fs::metadata(&log).is_ok_and(|m| m.len() > 0),
        "the app wrote no log at {}",
        log.display()
    );
    // One patch per edit (the warm-up's too), none for the log's writes.
    let patches = said
        .lines()
        .filter(|line| line.trim_start().starts_with("Patched "))
        .count();
    assert_eq!(
        patches,
        iterations + 1,
        "watch patched something else than the edits:\n{said}"
    );
    logging
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
    let recompiled = output.recompiled(&["logic", "app"]);
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

fn print_table(
    patched: &[Patched],
    logging: &[Patched],
    restarted: &[Restarted],
    recompiled: &[String],
) {
    let a = |f: fn(&Patched) -> f64| patched.iter().map(f).collect::<Vec<f64>>();
    let b = |f: fn(&Restarted) -> f64| restarted.iter().map(f).collect::<Vec<f64>>();
    let save_to_new = a(|s| s.save_to_new);
    let rebuild = b(|s| s.save_to_new);
    let speedup = median(&rebuild) / median(&save_to_new);
    let save_to_new_goal = at_most(median(&save_to_new), GOAL_SAVE_TO_NEW_MS, " ms");
    let logging_save_to_new: Vec<f64> = logging.iter().map(|s| s.save_to_new).collect();
    let logging_goal = at_most(median(&logging_save_to_new), GOAL_SAVE_TO_NEW_MS, " ms");
    let title = format!(
        "watch cycle: {} + {} iterations after 1 warm-up each, app ticking every {TICK_MS} ms; (b)'s `cargo build` recompiled: {}",
        patched.len(),
        restarted.len(),
        recompiled.join(", ")
    );
    let mut rows = vec![(
        "(a) watch: save -> new behaviour",
        save_to_new,
        save_to_new_goal.as_str(),
    )];
    rows.extend(split_rows(patched));
    rows.push((
        "(a') the same, app logging in its workspace",
        logging_save_to_new,
        logging_goal.as_str(),
    ));
    rows.extend(split_rows(logging));
    rows.extend([
        ("(b) rebuild + restart: save -> new behaviour", rebuild, ""),
        ("      kill the app", b(|s| s.kill), ""),
        (
            "      cargo build -p app (incremental)",
            b(|s| s.cargo_build),
            "",
        ),
        ("      start -> first line", b(|s| s.start), ""),
    ]);
    print_rows(&title, 1, &rows);
    print_figure(
        "speed-up (b) / (a), medians",
        &format!("{speedup:.1}x"),
        &at_least(speedup, GOAL_SPEEDUP, "x"),
    );
}

// ---------------------------------------------------------------------------------------------
// The processes.

/// One save under watch: the edit, the app's first line showing it, and watch's split.
fn watch_cycle(watch: &mut Watch, fixture: &Fixture, from: &str, to: &str) -> Patched {
    let version = to.trim_matches('"');
    watch.process.lines.drain();
    let mark = watch.mark();
    fixture.edit(EDITED, from, to);
    let saved = Instant::now();
    let shown = watch.process.wait_for_version(version, saved + NEW_VERSION);
    let mut sample = watch.patched_since(mark);
    sample.save_to_new = ms(shown.saturating_duration_since(saved));
    watch.assert_not_restarted();
    watch.settle();
    sample
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
