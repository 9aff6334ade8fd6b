use std::time::Duration;

use ticker::Ticker;

fn main() {
    hotreload_runtime::init();
    let ticks: Option<u64> = std::env::args().nth(1).and_then(|n| n.parse().ok());
    let mut ticker = Ticker { tick: 0 };
    while ticks.is_none_or(|n| ticker.tick < n) {
        println!("{}", ticker.line());
        ticker.tick += 1;
        hotreload_runtime::safe_point();
        // Sleeping holds no hot code: patches commit at once instead of waiting for the next line.
        hotreload_runtime::blocking_at_safe_point(|| {
            std::thread::sleep(Duration::from_millis(500))
        });
    }
}
