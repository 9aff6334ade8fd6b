//! The patch cycle against a plain incremental `cargo build`, side by side on one fixture copy.
//!
//! Run it with `cargo bench -p hotreload-tests --bench patch_cycle` (set `PATCH_CYCLE_ITERATIONS`
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

use std::time::{Duration, Instant};

use hotreload_tests::bench::{at_most, bench_fixture, iterations, measure, median, ms};
use hotreload_tests::bench::{print_figure, print_rows, CargoBuildOutput, ToolProcess, TICK_MS};
use hotreload_tests::{locations, Fixture, PatchReport};

/// Measured iterations unless `PATCH_CYCLE_ITERATIONS` says more.
const ITERATIONS: usize = 9;
/// How long an applied patch may take to show in the app's output.
const NEW_VERSION: Duration = Duration::from_secs(30);

/// Goals printed next to the numbers.
const GOAL_BUILD_APPLY_MS: f64 = 300.0;
const GOAL_RATIO: f64 = 0.4;
const GOAL_SIZE_PERCENT: f64 = 5.0;

fn main() {
    let iterations = iterations("PATCH_CYCLE_ITERATIONS", ITERATIONS);
    // Holds its target directory while it lives: another run waits.
    let fixture = bench_fixture(locations!(), "hotpatch-bench-", "bench-fixture-target");
    eprintln!(
        "patch_cycle: fixture in {}, target {}",
        fixture.root().display(),
        fixture.target().display()
    );
    eprintln!(
        "patch_cycle: `cargo hotpatch run -p app` (the first run builds tokio and the runtime)"
    );
    let mut app = ToolProcess::start(&fixture, "run");
    let host_size = std::fs::metadata(fixture.target().join("hotpatch/dev/base/app"))
        .expect("the base record's copy of the host")
        .len();

    let (warm_up, samples) = measure(
        "patch_cycle:",
        iterations,
        |i, from, to| cycle(&fixture, &mut app, from, to, i),
        |sample| {
            format!(
                "build {:.1} ms, apply {:.1} ms, save->new {:.1} ms, cargo build {:.1} ms",
                sample.build, sample.apply, sample.save_to_new, sample.cargo_build
            )
        },
    );
    drop(app);
    print_table(&samples, &warm_up.recompiled, host_size);
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

fn cycle(fixture: &Fixture, app: &mut ToolProcess, from: &str, to: &str, i: usize) -> Sample {
    let version = to.trim_matches('"');
    fixture.edit("logic/src/lib.rs", from, to);
    let saved = Instant::now();

    // (a) build, apply, and the first line showing the new version.
    let patch = fixture.root().join(format!("patches/p{i}.hotpatch"));
    let started = Instant::now();
    let built = fixture
        .tool(&[
            "build",
            "--manifest-path",
            fixture.manifest().to_str().unwrap(),
            "-p",
            "app",
            "-o",
            patch.to_str().unwrap(),
            "--message-format",
            "json",
        ])
        .success();
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
    let applied = fixture
        .tool(&[
            "apply",
            patch.to_str().unwrap(),
            "--target",
            fixture.socket().to_str().unwrap(),
            "--message-format",
            "json",
        ])
        .success();
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
    let shown = app.wait_for_version(version, Instant::now() + NEW_VERSION);
    let save_to_new = ms(shown.saturating_duration_since(saved));

    // (b) the same edit, rebuilt by cargo as the host build does.
    let started = Instant::now();
    let output = fixture.cargo_build();
    let cargo_build = ms(started.elapsed());
    let recompiled = output.recompiled(&["logic", "app"]);

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
    let patch_size = median(&column(|s| s.patch_size as f64));
    let percent = patch_size / host_size as f64 * 100.0;
    let build_apply_goal = at_most(median(&build_apply), GOAL_BUILD_APPLY_MS, " ms");
    let title = format!(
        "patch cycle: {} iterations after 1 warm-up, app ticking every {TICK_MS} ms; `cargo build` recompiled: {}",
        samples.len(),
        recompiled.join(", ")
    );
    print_rows(
        &title,
        2,
        &[
            ("(a) cargo hotpatch build (wall)", column(|s| s.build), ""),
            ("      rustc (tool's rustc_ms)", column(|s| s.rustc), ""),
            (
                "      checks (tool's analysis_ms)",
                column(|s| s.analysis),
                "",
            ),
            ("      link (tool's link_ms)", column(|s| s.link), ""),
            ("(a) cargo hotpatch apply (wall)", column(|s| s.apply), ""),
            (
                "      verify (runtime's verify_us)",
                column(|s| s.verify),
                "",
            ),
            ("      load (runtime's load_us)", column(|s| s.load), ""),
            (
                "      commit (runtime's commit_us)",
                column(|s| s.commit),
                "",
            ),
            ("(a) build + apply", build_apply, &build_apply_goal),
            ("(a) save -> new behaviour", column(|s| s.save_to_new), ""),
            ("(b) cargo build -p app (incremental)", cargo_build, ""),
        ],
    );
    print_figure(
        "ratio (a) build+apply / (b) cargo build",
        &format!("{ratio:.2}x"),
        &at_most(ratio, GOAL_RATIO, "x"),
    );
    print_figure(
        &format!("patch size {patch_size:.0} B / host {host_size} B"),
        &format!("{percent:.2}%"),
        &at_most(percent, GOAL_SIZE_PERCENT, "%"),
    );
}
