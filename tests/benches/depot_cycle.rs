//! `cargo hotpatch watch` on the realistic example against an incremental `cargo build` of the
//! same edits, side by side in one run.
//!
//! Run it with `cargo bench -p hotreload-tests --bench depot_cycle` (set `DEPOT_CYCLE_ITERATIONS`
//! for more than the default 5 measured iterations). It copies `examples/depot` (6,400 lines,
//! tokio, tracing, serde; see `Fixture::depot`) to a temporary workspace and makes the same
//! one-line edits of the reply of its `HELLO` handler, a body with a tracing span and an `info!`
//! event (`hello {client}` -> `welcome1 {client}` -> `welcome2 {client}` ...), twice, in two
//! phases of one run:
//!
//! (a) with `cargo hotpatch watch -p depot` running the depot: the time from writing the file to
//!     the first reply with the new greeting on a client connection kept open (asking `HELLO`
//!     every few milliseconds), with the split watch prints itself and the size of its patch;
//! (b) with watch stopped and the file restored to its original text: `cargo build -p depot` of
//!     each edit with the host build's environment, in the same target directory (an incremental
//!     rebuild of `depot` only).
//!
//! The first edit of each phase is a warm-up and is not counted. The depot builds in the
//! end-to-end tests' `$CARGO_TARGET_TMPDIR/fixture-target` (held while the bench runs), where
//! those tests already built its dependencies. It prints a table with the goals next to the
//! numbers, then kills what it started. Wall times of subprocesses, so no criterion.

use std::time::{Duration, Instant, SystemTime};

use hotreload_tests::bench::{at_most, iterations, measure_edits, median, ms};
use hotreload_tests::bench::{print_figure, print_rows, CargoBuildOutput};
use hotreload_tests::depot::{listening_address, Client};
use hotreload_tests::watch::{describe_patched, median_size, split_rows, Patched, Watch, QUIET};
use hotreload_tests::{locations, Fixture, Profile};

/// Measured iterations of each phase unless `DEPOT_CYCLE_ITERATIONS` says more.
const ITERATIONS: usize = 5;
/// How long an edit may take to show in the depot's replies.
const NEW_GREETING: Duration = Duration::from_secs(60);
/// How often the client asks while waiting for the new greeting.
const POLL: Duration = Duration::from_millis(2);
/// The handler every edit changes, and the client's name in its greeting.
const EDITED: &str = "depot/src/handlers/session.rs";
const CLIENT: &str = "bench";

/// Goals printed next to the numbers (issue 12).
const GOAL_SAVE_TO_NEW_MS: f64 = 500.0;
const GOAL_RATIO: f64 = 0.3;

/// The `i`th edit: the greeting `hello` -> `welcome1`, then `welcome{i}` -> `welcome{i+1}`.
fn greeting_edit(i: usize) -> (String, String) {
    let greeting = |n: usize| {
        let word = if n == 0 {
            "hello".to_owned()
        } else {
            format!("welcome{n}")
        };
        format!("Reply::Text(format!(\"{word} {{client}}\"))")
    };
    (greeting(i), greeting(i + 1))
}

/// The reply to `HELLO bench` after the edit to `to`.
fn expected_reply(to: &str) -> String {
    let word = to
        .split('"')
        .nth(1)
        .and_then(|text| text.split_whitespace().next())
        .expect("an edit of the greeting");
    format!("${word} {CLIENT}")
}

fn main() {
    let iterations = iterations("DEPOT_CYCLE_ITERATIONS", ITERATIONS);
    // Holds its target directory while it lives: a test or another run waits.
    let fixture = Fixture::depot(locations!(), Profile::Dev);
    eprintln!(
        "depot_cycle: depot in {}, target {}",
        fixture.root().display(),
        fixture.target().display()
    );
    let original = fixture.read(EDITED);

    // (a) watch patches each save into the running depot.
    eprintln!("depot_cycle: (a) `cargo hotpatch watch -p depot`");
    let mut watch = Watch::start(&fixture);
    let mut client = Client::open(&listening_address(&watch.process.first_line));
    assert_eq!(client.ask(&format!("HELLO {CLIENT}")), "$hello bench");
    watch.settle();
    let host_size = std::fs::metadata(fixture.target().join("hotpatch/dev/base/depot"))
        .expect("the base record's copy of the host")
        .len();
    let mut patch_sizes = Vec::new();
    let (first, patched) = measure_edits(
        "depot_cycle: (a)",
        iterations,
        greeting_edit,
        |i, from, to| {
            let saved = SystemTime::now();
            let sample = watch_cycle(&mut watch, &mut client, &fixture, from, to);
            let size = watch.last_patch_size(&fixture, saved);
            if i > 0 {
                patch_sizes.push(size);
            }
            sample
        },
        describe_patched,
    );
    drop(client);
    drop(watch);

    // (b) the same edits from the same text, built by cargo as the host build is.
    fixture.replace_file(EDITED, &original);
    eprintln!("depot_cycle: (b) `cargo build -p depot` of the original text");
    fixture.cargo_build();
    let (warm_up, built) = measure_edits(
        "depot_cycle: (b)",
        iterations,
        greeting_edit,
        |_, from, to| cargo_build_cycle(&fixture, from, to),
        |sample| format!("cargo build {:.1} ms", sample.0),
    );
    fixture.replace_file(EDITED, &original);
    print_table(&patched, &built, &warm_up.1, &patch_sizes, host_size);
    // The warm-up is the first save after the depot started: it must not pay for the start.
    print_figure(
        "(a) first save after start (the warm-up)",
        &format!("{:.1} ms", first.save_to_new),
        "",
    );
}

/// One save under watch: the edit, the first reply with the new greeting, and watch's split.
fn watch_cycle(
    watch: &mut Watch,
    client: &mut Client,
    fixture: &Fixture,
    from: &str,
    to: &str,
) -> Patched {
    let expected = expected_reply(to);
    let request = format!("HELLO {CLIENT}");
    let mark = watch.mark();
    fixture.edit(EDITED, from, to);
    let saved = Instant::now();
    let deadline = saved + NEW_GREETING;
    let shown = loop {
        let reply = client.ask(&request);
        let answered = Instant::now();
        if reply == expected {
            break answered;
        }
        assert!(
            answered < deadline,
            "the depot still answers {reply:?}, not {expected:?}\n{}",
            watch.process.describe()
        );
        std::thread::sleep(POLL);
    };
    let mut sample = watch.patched_since(mark);
    sample.save_to_new = ms(shown.saturating_duration_since(saved));
    watch.assert_not_restarted();
    watch.settle();
    sample
}

/// One edit built by `cargo build -p depot`: milliseconds, and the crates it compiled.
fn cargo_build_cycle(fixture: &Fixture, from: &str, to: &str) -> (f64, Vec<String>) {
    fixture.edit(EDITED, from, to);
    let started = Instant::now();
    let output = fixture.cargo_build();
    let took = ms(started.elapsed());
    let recompiled = output.recompiled(&["depot"]);
    std::thread::sleep(QUIET);
    (took, recompiled)
}

fn print_table(
    patched: &[Patched],
    built: &[(f64, Vec<String>)],
    recompiled: &[String],
    patch_sizes: &[u64],
    host_size: u64,
) {
    let save_to_new: Vec<f64> = patched.iter().map(|s| s.save_to_new).collect();
    let cargo_build: Vec<f64> = built.iter().map(|(took, _)| *took).collect();
    let ratio = median(&save_to_new) / median(&cargo_build);
    let save_to_new_goal = at_most(median(&save_to_new), GOAL_SAVE_TO_NEW_MS, " ms");
    let title = format!(
        "depot cycle (examples/depot): {} + {} iterations after 1 warm-up each; (b)'s `cargo build` recompiled: {}",
        patched.len(),
        built.len(),
        recompiled.join(", ")
    );
    let mut rows = vec![(
        "(a) watch: save -> new reply",
        save_to_new,
        save_to_new_goal.as_str(),
    )];
    rows.extend(split_rows(patched));
    rows.push(("(b) cargo build -p depot (incremental)", cargo_build, ""));
    print_rows(&title, 1, &rows);
    print_figure(
        "ratio (a) save->new / (b) cargo build",
        &format!("{ratio:.2}x"),
        &at_most(ratio, GOAL_RATIO, "x"),
    );
    let patch_size = median_size(patch_sizes);
    print_figure(
        &format!("patch size {patch_size:.0} B / host {host_size} B"),
        &format!("{:.2}%", patch_size / host_size as f64 * 100.0),
        "",
    );
}
