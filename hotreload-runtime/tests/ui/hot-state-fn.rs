//! A function: `#[hot_state]` goes on a struct or an enum.

use hotreload_runtime::hot_state;

#[hot_state(version = 1)]
fn counter() -> u64 {
    0
}

fn main() {
    let _ = counter();
}
