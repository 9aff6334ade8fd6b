//! The window and its loop: everything you would edit lives in the library (`lib.rs`), which
//! `cargo hotpatch watch -p snake` patches into the running game.
//!
//! `SNAKE_REPORT=1` prints one line a second (`frame=.. score=.. best=.. games=.. corner=#rrggbb`,
//! the colour of the window's top-left pixel as read back from the screen); `SNAKE_SCREENSHOT=FILE`
//! also writes the window to FILE as a PNG each time. The tests and the README's pictures use them.

use std::time::{Duration, Instant};

use macroquad::prelude::*;

/// About 30 frames a second: smooth enough, and a software renderer stays light.
const FRAME: Duration = Duration::from_millis(33);

fn window_conf() -> Conf {
    Conf {
        window_title: "snake (hot)".to_owned(),
        window_width: 384,
        window_height: 384,
        window_resizable: false,
        ..Default::default()
    }
}

#[macroquad::main(window_conf)]
async fn main() {
    hotreload_runtime::init();
    let report = std::env::var_os("SNAKE_REPORT").is_some();
    let screenshot = std::env::var_os("SNAKE_SCREENSHOT");
    let mut frames: u64 = 0;
    let mut last_report = Instant::now();
    loop {
        let started = Instant::now();
        snake::frame(snake::Input::read(), get_frame_time());
        frames += 1;
        if report && last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            report_frame(frames, screenshot.as_deref());
        }
        hotreload_runtime::safe_point();
        next_frame().await;
        if let Some(rest) = FRAME.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

/// Prints the game's numbers and the colour of the window's top-left pixel, read back from the
/// screen; writes the window to `screenshot` if given.
fn report_frame(frames: u64, screenshot: Option<&std::ffi::OsStr>) {
    let screen = get_screen_data();
    let corner = screen.get_pixel(1, 1);
    let [r, g, b] = [corner.r, corner.g, corner.b].map(|c| (c * 255.0).round() as u8);
    let (score, best, games) = snake::scores();
    println!(
        "frame={frames} score={score} best={best} games={games} corner=#{r:02x}{g:02x}{b:02x}"
    );
    if let Some(path) = screenshot {
        screen.export_png(&path.to_string_lossy());
    }
}
