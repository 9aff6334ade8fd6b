//! What building a patch cost, by stage: one recorder the driver times each stage with, instead
//! of a clock per stage threaded through the code.

use std::time::{Duration, Instant};

/// Where a patch build's time goes, as reported to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// Replaying rustc (and comparing the functions it compiled).
    Rustc,
    /// Reading the host's facts, redirecting, analysing and checking layouts.
    Analysis,
    /// Merging objects and linking the library.
    Link,
}

/// The time spent so far in each [`Cost`].
#[derive(Debug, Default)]
pub struct Timings {
    spent: Vec<(Cost, Duration)>,
}

impl Timings {
    /// Runs one stage, adding its time to `cost`.
    pub fn time<T>(&mut self, cost: Cost, stage: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = stage();
        self.spent.push((cost, started.elapsed()));
        result
    }

    /// The total time spent in `cost`.
    pub fn spent(&self, cost: Cost) -> Duration {
        self.spent
            .iter()
            .filter(|(each, _)| *each == cost)
            .map(|(_, duration)| *duration)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cost_sums_its_stages() {
        let mut timings = Timings::default();
        let sleep = |ms| std::thread::sleep(Duration::from_millis(ms));
        assert_eq!(timings.time(Cost::Link, || 7), 7);
        timings.time(Cost::Analysis, || sleep(5));
        timings.time(Cost::Analysis, || sleep(5));
        assert!(timings.spent(Cost::Analysis) >= Duration::from_millis(10));
        assert!(timings.spent(Cost::Link) < Duration::from_millis(5));
        assert_eq!(timings.spent(Cost::Rustc), Duration::ZERO);
    }
}
