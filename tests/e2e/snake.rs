//! End to end: the game example (`examples/snake`, macroquad) under `cargo hotpatch watch`, in a
//! real window on a virtual display drawn by Mesa's software renderer. An edit of its drawing
//! code changes the window's pixels while the same process keeps its game (its `#[hot_state]`).
//!
//! The game reports once a second (`SNAKE_REPORT`): `frame=N score=S best=B games=G
//! corner=#rrggbb`, the corner's colour read back from the window's framebuffer.
//!
//! TODO(issue 15, items 1-2 in the runtime): an edit that panics in `update` and one that adds a
//! field to `Game`, checking the game survives both, once the runtime rolls back panicking
//! patches and migrates serde-bridgeable changes by itself.

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
    assert_eq!(hello(&fixture.socket()).unwrap(), pid, "the same process");
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
}
