//! Snake, the part you edit while it runs: the rules ([`update`]) and the drawing ([`draw`]) are
//! `#[hot]`, and the game itself ([`Game`]: the snake, the food, the score) lives in the runtime's
//! storage through `#[hot_state]`, so a patch keeps it.
//!
//! The snake plays by itself until an arrow key is pressed (`A` gives it back the autopilot).
//! Try, under `cargo hotpatch watch -p snake`: change `BACKGROUND` or the snake's colour in
//! [`draw`], or how fast it moves in [`update`], and save.

use hotreload_runtime::state::Singleton;
use hotreload_runtime::{hot, hot_state};
use macroquad::prelude::*;
use serde::{Deserialize, Serialize};

/// Cells per side of the square board.
pub const CELLS: i32 = 16;
/// Seconds between two moves of the snake.
const STEP_SECONDS: f32 = 0.12;

/// Everything the game knows; kept by the runtime across patches.
#[hot_state(version = 1)]
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Game {
    /// The cells of the snake, head first.
    pub snake: Vec<(i32, i32)>,
    /// Where the head goes next: one of the four unit steps.
    pub heading: (i32, i32),
    pub food: (i32, i32),
    /// Food eaten in this game.
    pub score: u32,
    /// The best score of every game since the start.
    pub best: u32,
    /// Games played, this one included.
    pub games: u32,
    /// Whether the snake steers itself.
    pub autopilot: bool,
    /// Seconds since the last move.
    pub since_move: f32,
    /// The state of the food's random generator (xorshift).
    pub seed: u64,
}

impl Default for Game {
    fn default() -> Self {
        let mut game = Game {
            snake: Vec::new(),
            heading: (1, 0),
            food: (0, 0),
            score: 0,
            best: 0,
            games: 0,
            autopilot: true,
            since_move: 0.0,
            seed: 0x2545_f491_4f6c_dd1d,
        };
        new_game(&mut game);
        game
    }
}

/// The one game, in the runtime's storage.
pub static GAME: Singleton<Game> = Singleton::new("snake.game", Game::default);

/// What the player pressed this frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct Input {
    /// An arrow key's step, if one was pressed.
    pub turn: Option<(i32, i32)>,
    /// `A`: give the snake its autopilot back.
    pub autopilot: bool,
}

impl Input {
    /// Reads the keyboard.
    pub fn read() -> Self {
        let turn = [
            (KeyCode::Up, (0, -1)),
            (KeyCode::Down, (0, 1)),
            (KeyCode::Left, (-1, 0)),
            (KeyCode::Right, (1, 0)),
        ]
        .into_iter()
        .find(|(key, _)| is_key_pressed(*key))
        .map(|(_, step)| step);
        Input {
            turn,
            autopilot: is_key_pressed(KeyCode::A),
        }
    }
}

/// One frame: the rules, then the drawing. Every function that reads the game is `#[hot]`: once a
/// patch changes `Game`, the values have its new layout and only the new code may touch them (old
/// code gets an error instead of a misread).
#[hot]
pub fn frame(input: Input, seconds: f32) {
    let mut game = GAME.write().expect("the game's state");
    update(&mut game, input, seconds);
    draw(&game);
}

/// The score, the best score and the games played, for the window's report.
#[hot]
pub fn scores() -> (u32, u32, u32) {
    let game = GAME.read().expect("the game's state");
    (game.score, game.best, game.games)
}

/// The rules: steering, moving every [`STEP_SECONDS`], eating, and the end of a game.
#[hot]
pub fn update(game: &mut Game, input: Input, seconds: f32) {
    if let Some(turn) = input.turn {
        game.autopilot = false;
        steer(game, turn);
    }
    if input.autopilot {
        game.autopilot = true;
    }
    game.since_move += seconds;
    if game.since_move < STEP_SECONDS {
        return;
    }
    game.since_move = 0.0;
    if game.autopilot {
        let turn = autopilot(game);
        steer(game, turn);
    }
    let head = game.snake[0];
    let next = (
        (head.0 + game.heading.0).rem_euclid(CELLS),
        (head.1 + game.heading.1).rem_euclid(CELLS),
    );
    if game.snake[..game.snake.len() - 1].contains(&next) {
        new_game(game);
        return;
    }
    game.snake.insert(0, next);
    if next == game.food {
        game.score += 1;
        game.best = game.best.max(game.score);
        place_food(game);
    } else {
        game.snake.pop();
    }
}

/// The board's colour.
const BACKGROUND: Color = Color::new(0.08, 0.10, 0.14, 1.0);

/// The drawing: the board, the food, the snake and the score.
#[hot]
pub fn draw(game: &Game) {
    clear_background(BACKGROUND);
    let cell = screen_width().min(screen_height()) / CELLS as f32;
    let (fx, fy) = game.food;
    draw_circle(
        (fx as f32 + 0.5) * cell,
        (fy as f32 + 0.5) * cell,
        cell * 0.4,
        RED,
    );
    for (i, &(x, y)) in game.snake.iter().enumerate() {
        let colour = if i == 0 { LIME } else { GREEN };
        draw_rectangle(
            x as f32 * cell + 1.0,
            y as f32 * cell + 1.0,
            cell - 2.0,
            cell - 2.0,
            colour,
        );
    }
    let text = format!("score {}  best {}", game.score, game.best);
    draw_text(&text, 8.0, screen_height() - 8.0, 24.0, WHITE);
}

/// Turns the snake, unless it would turn back into itself.
fn steer(game: &mut Game, turn: (i32, i32)) {
    if (turn.0 + game.heading.0, turn.1 + game.heading.1) != (0, 0) {
        game.heading = turn;
    }
}

/// The step that brings the head closer to the food without running into the snake.
fn autopilot(game: &Game) -> (i32, i32) {
    let head = game.snake[0];
    let free = |step: &(i32, i32)| {
        let next = (
            (head.0 + step.0).rem_euclid(CELLS),
            (head.1 + step.1).rem_euclid(CELLS),
        );
        !game.snake[..game.snake.len() - 1].contains(&next)
            && (step.0 + game.heading.0, step.1 + game.heading.1) != (0, 0)
    };
    let distance = |step: &(i32, i32)| {
        let wrapped = |a: i32, b: i32| (a - b).rem_euclid(CELLS).min((b - a).rem_euclid(CELLS));
        let next = (head.0 + step.0, head.1 + step.1);
        wrapped(next.0, game.food.0) + wrapped(next.1, game.food.1)
    };
    [(1, 0), (0, 1), (-1, 0), (0, -1)]
        .into_iter()
        .filter(free)
        .min_by_key(distance)
        .unwrap_or(game.heading)
}

/// A fresh snake in the middle of the board; the best score and the games played stay.
fn new_game(game: &mut Game) {
    let middle = CELLS / 2;
    game.snake = vec![(middle, middle), (middle - 1, middle), (middle - 2, middle)];
    game.heading = (1, 0);
    game.score = 0;
    game.games += 1;
    place_food(game);
}

/// Puts the food on a free cell.
fn place_food(game: &mut Game) {
    loop {
        // xorshift64
        game.seed ^= game.seed << 13;
        game.seed ^= game.seed >> 7;
        game.seed ^= game.seed << 17;
        let cell = (game.seed % (CELLS * CELLS) as u64) as i32;
        let food = (cell % CELLS, cell / CELLS);
        if !game.snake.contains(&food) {
            game.food = food;
            return;
        }
    }
}
