//! A union: `#[hot_state]` goes on a struct or an enum.

use hotreload_runtime::hot_state;

#[hot_state(version = 1)]
pub union Bits {
    pub int: u32,
    pub float: f32,
}

fn main() {
    let _ = unsafe { Bits { int: 1 }.float };
}
