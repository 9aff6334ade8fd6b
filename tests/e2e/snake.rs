//! End to end: the game example (`examples/snake`, macroquad) under `cargo hotpatch watch`, in a
//! real window on a virtual display drawn by Mesa's software renderer. An edit of its drawing
//! code changes the window's pixels while the same process keeps its game (its `#[hot_state]`).
//!
//! The game reports once a second (`SNAKE_REPORT`): `frame=N score=S best=B games=G
//! corner=#rrggbb`, the corner's colour read back from the window's framebuffer.
//!
//! Then an edit of the rules that panics (an index out of bounds) is rolled back and the game
//! goes on; the fix patches again; and a field added to the game's `#[hot_state]` type is
//! carried by serde, without a version bump or a migration, the game going on with its score.

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use hotreload_tests::display::VirtualDisplay;
use hotreload_tests::{hello, locations, read_lines, Fixture, Profile, ToolRun};

/// How long a patch may take to show in the window.
const REDRAWN: Duration = Duration::from_secs(60);

/// One report line of the game.
#[derive(Debug, Clone, PartialEq)]
struct Report {
    frame: u64,
    score: u64,
    best: u64,
    games: u64,
    corner: [u8; 3],
}

fn parse(line: &str) -> Option<Report> {
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|part| part.strip_prefix(&format!("{name}=")))
    };
    let number = |name: &str| field(name)?.parse().ok();
    let hex = field("corner")?.strip_prefix('#')?;
    let channel = |i: usize| u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok();
    Some(Report {
        frame: number("frame")?,
        score: number("score")?,
        best: number("best")?,
        games: number("games")?,
        corner: [channel(0)?, channel(1)?, channel(2)?],
    })
}

/// The next report within `within`; panics with watch's output otherwise.
fn next_report(lines: &Receiver<String>, run: &ToolRun, within: Duration) -> Report {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(report) = parse(&line) {
                    return report;
                }
            }
            Err(_) => panic!(
                "the game printed no report within {within:?}\n{}",
                run.stderr_tail()
            ),
        }
    }
}

fn close_to(colour: [u8; 3], expected: [u8; 3]) -> bool {
    colour
        .iter()
        .zip(expected)
        .all(|(&c, e)| c.abs_diff(e) <= 2)
}

#[test]
fn an_edit_of_the_drawing_code_changes_the_window_and_the_game_goes_on() {
    let display = VirtualDisplay::start();
    let fixture = Fixture::snake(locations!(), Profile::Dev, display.name());
    let (mut run, stdout) = ToolRun::start(&fixture, "watch", &[]);
    let lines = read_lines(stdout);
    let first = next_report(&lines, &run, fixture.profile().first_build());
    let pid = run.adopt_app();
    // The board's colour as the example draws it (0.08, 0.10, 0.14).
    assert!(
        close_to(first.corner, [20, 26, 36]),
        "the window shows the board: {first:?}"
    );
    // The snake plays by itself: let it score.
    let deadline = Instant::now() + REDRAWN;
    let before = loop {
        let report = next_report(&lines, &run, REDRAWN);
        if report.best >= 2 {
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "the snake never scored: {report:?}"
        );
    };

    // A new colour for the board, saved while the game runs.
    fixture.edit(
        "snake/src/lib.rs",
        "Color::new(0.08, 0.10, 0.14, 1.0)",
        "Color::new(0.60, 0.20, 0.40, 1.0)",
    );
    let deadline = Instant::now() + REDRAWN;
    let after = loop {
        let report = next_report(&lines, &run, REDRAWN);
        if close_to(report.corner, [153, 51, 102]) {
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "the window was not redrawn with the new colour: {report:?}\n{}",
            run.stderr_tail()
        );
    };
    assert_same_process(&fixture, &run, pid);
    assert!(
        after.frame > before.frame && after.best >= before.best && after.games >= before.games,
        "the game went on with its state: {before:?} then {after:?}"
    );
    if after.games == before.games {
        assert!(
            after.score >= before.score,
            "the same game kept its score: {before:?} then {after:?}"
        );
    }
    let said = run.stderr_text();
    assert!(
        said.contains("Changed snake::draw (hot: running now)"),
        "watch says the drawing changed, and nothing else: {said}"
    );
    let after = a_panic_in_the_rules_is_rolled_back(&fixture, &lines, &mut run, pid, after);
    a_field_added_to_the_game_keeps_the_game(&fixture, &lines, &mut run, pid, after);
}

/// Panics unless the process answering on the control socket is `pid`. A `hello` that finds the
/// app between connections (it may close one as it commits) is asked again, a few times.
fn assert_same_process(fixture: &Fixture, run: &ToolRun, pid: u32) {
    let mut last = None;
    for _ in 0..5 {
        match hello(&fixture.socket()) {
            Ok(answered) => {
                assert_eq!(answered, pid, "the same process");
                return;
            }
            Err(error) => last = Some(error),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "the app does not answer `hello`: {last:?}\n{}",
        run.stderr_tail()
    );
}

/// Waits until watch's stderr after `mark` contains `needle`; returns what it said.
fn wait_for_watch(run: &ToolRun, mark: usize, needle: &str) -> String {
    let deadline = Instant::now() + REDRAWN;
    loop {
        let said = run.stderr_text()[mark..].to_owned();
        if said.contains(needle) {
            return said;
        }
        assert!(
            Instant::now() < deadline,
            "watch never said `{needle}`: {said}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The next reports until one satisfies `done`; each must come from the game going on.
fn reports_until(
    lines: &Receiver<String>,
    run: &ToolRun,
    before: &Report,
    done: impl Fn(&Report) -> bool,
) -> Report {
    let deadline = Instant::now() + REDRAWN;
    loop {
        let report = next_report(lines, run, REDRAWN);
        assert!(
            report.frame > before.frame && report.best >= before.best,
            "the game went on with its state: {before:?} then {report:?}"
        );
        if done(&report) {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting: {report:?}\n{}",
            run.stderr_tail()
        );
    }
}

fn a_panic_in_the_rules_is_rolled_back(
    fixture: &Fixture,
    lines: &Receiver<String>,
    run: &mut ToolRun,
    pid: u32,
    before: Report,
) -> Report {
    // The head read past the end of the snake: out of bounds on every move.
    let mark = run.stderr_text().len();
    let good = "let head = game.snake[0];";
    let bad = "let head = game.snake[game.snake.len()];";
    fixture.edit("snake/src/lib.rs", good, bad);
    let said = wait_for_watch(run, mark, "after the panic");
    assert!(
        said.contains("patched code panicked in") && said.contains("index out of bounds"),
        "watch shows the panic: {said}"
    );
    let report = reports_until(lines, run, &before, |_| true);
    assert_same_process(fixture, run, pid);
    // The fix (with a faster snake) patches again.
    let mark = run.stderr_text().len();
    fixture.edit_all(
        "snake/src/lib.rs",
        &[
            (bad, good),
            (
                "const STEP_SECONDS: f32 = 0.12;",
                "const STEP_SECONDS: f32 = 0.10;",
            ),
        ],
    );
    let said = wait_for_watch(run, mark, "Patched snake");
    assert!(!said.contains("panicked"), "{said}");
    let fixed = reports_until(lines, run, &report, |_| true);
    // Moving again: it eats.
    reports_until(lines, run, &fixed, |now| {
        now.best > fixed.best || now.score > fixed.score || now.games > fixed.games
    })
}

fn a_field_added_to_the_game_keeps_the_game(
    fixture: &Fixture,
    lines: &Receiver<String>,
    run: &mut ToolRun,
    pid: u32,
    before: Report,
) {
    let mark = run.stderr_text().len();
    fixture.edit_all(
        "snake/src/lib.rs",
        &[
            (
                "    pub seed: u64,\n}",
                "    pub seed: u64,\n    /// Moves made, over every game.\n    #[serde(default)]\n    pub moves: u64,\n}",
            ),
            (
                "            seed: 0x2545_f491_4f6c_dd1d,\n",
                "            seed: 0x2545_f491_4f6c_dd1d,\n            moves: 0,\n",
            ),
            (
                "    game.since_move = 0.0;\n",
                "    game.since_move = 0.0;\n    game.moves += 1;\n",
            ),
        ],
    );
    let said = wait_for_watch(run, mark, "Patched snake");
    assert!(
        !said.contains("restarting") && !said.contains("error"),
        "the field is carried across without a restart: {said}"
    );
    reports_until(lines, run, &before, |_| true);
    assert_same_process(fixture, run, pid);
}
