//! Wall-clock time in milliseconds since the Unix epoch: what the store and the queues compare
//! expiry times with, and what snapshots keep (an `Instant` cannot be saved to a file).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// Now, in milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as Millis)
        .unwrap_or(0)
}

/// `now + duration`, saturating instead of wrapping on absurd durations.
pub fn after(now: Millis, duration: Duration) -> Millis {
    now.saturating_add(duration.as_millis().min(u128::from(u64::MAX)) as Millis)
}

/// How long from `now` until `deadline`, zero if it has passed.
pub fn until(now: Millis, deadline: Millis) -> Duration {
    Duration::from_millis(deadline.saturating_sub(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_saturate() {
        assert_eq!(after(10, Duration::from_millis(5)), 15);
        assert_eq!(after(u64::MAX - 1, Duration::from_secs(10)), u64::MAX);
        assert_eq!(until(20, 10), Duration::ZERO);
        assert_eq!(until(10, 25), Duration::from_millis(15));
    }

    #[test]
    fn the_clock_is_past_2020() {
        assert!(unix_millis() > 1_577_836_800_000);
    }
}
