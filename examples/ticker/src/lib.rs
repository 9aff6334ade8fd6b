//! The ticker's drawing code. Under `cargo hotpatch watch`, edit any function here and save: the
//! running ticker draws with the new code at its next line, keeping its count.

use hotreload_runtime::hot;

/// The state the ticker keeps across patches.
pub struct Ticker {
    pub tick: u64,
}

#[hot]
impl Ticker {
    /// One line of output. Try changing the bar character or the label.
    pub fn line(&self) -> String {
        format!("tick {:>4} {}", self.tick, bar(self.tick))
    }
}

/// A bar that grows and shrinks. Try a different width or character.
#[hot]
pub fn bar(tick: u64) -> String {
    let width = (tick % 20) as usize;
    "#".repeat(width)
}
