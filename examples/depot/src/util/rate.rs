//! A token-bucket rate limiter keyed by anything hashable (a peer address, a client name).
//!
//! Each key has a bucket of `burst` tokens refilled at `per_second`; a request takes one token
//! or is told how long until one is there. Buckets idle long enough to be full again are pruned.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How fast tokens come back and how many a key may save up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateSettings {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for RateSettings {
    fn default() -> Self {
        RateSettings {
            per_second: 2_000.0,
            burst: 4_000,
        }
    }
}

impl RateSettings {
    /// How long an empty bucket takes to fill: a bucket idle for that long can be forgotten.
    pub fn refill_time(&self) -> Duration {
        if self.per_second <= 0.0 {
            return Duration::MAX;
        }
        Duration::from_secs_f64(f64::from(self.burst) / self.per_second)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Per-key token buckets.
#[derive(Debug)]
pub struct RateLimiter<K> {
    settings: RateSettings,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(settings: RateSettings) -> Self {
        RateLimiter {
            settings,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> RateSettings {
        self.settings
    }

    /// Takes a token for `key` at `now`, or says how long until one is there.
    pub fn acquire(&self, key: &K, now: Instant) -> Result<(), Duration> {
        self.acquire_n(key, 1, now)
    }

    /// Takes `n` tokens at once (a batch of commands), or none.
    pub fn acquire_n(&self, key: &K, n: u32, now: Instant) -> Result<(), Duration> {
        let settings = self.settings;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: f64::from(settings.burst),
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens =
            (bucket.tokens + elapsed * settings.per_second).min(f64::from(settings.burst));
        bucket.updated = now;
        let wanted = f64::from(n);
        if bucket.tokens >= wanted {
            bucket.tokens -= wanted;
            return Ok(());
        }
        if settings.per_second <= 0.0 {
            return Err(Duration::MAX);
        }
        let missing = wanted - bucket.tokens;
        Err(Duration::from_secs_f64(missing / settings.per_second))
    }

    /// Forgets the buckets not used for longer than they take to fill: they would be full.
    pub fn prune(&self, now: Instant) -> usize {
        let idle = self.settings.refill_time();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let before = buckets.len();
        buckets.retain(|_, bucket| now.saturating_duration_since(bucket.updated) < idle);
        before - buckets.len()
    }

    /// Keys with a bucket now.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: f64, burst: u32) -> RateLimiter<&'static str> {
        RateLimiter::new(RateSettings { per_second, burst })
    }

    #[test]
    fn a_burst_then_a_wait() {
        let limiter = limiter(10.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.acquire(&"a", start), Ok(()));
        }
        let wait = limiter.acquire(&"a", start).unwrap_err();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100));
        // Other keys have buckets of their own.
        assert_eq!(limiter.acquire(&"b", start), Ok(()));
        // A token comes back after a tenth of a second.
        assert_eq!(
            limiter.acquire(&"a", start + Duration::from_millis(100)),
            Ok(())
        );
    }

    #[test]
    fn a_batch_takes_all_or_nothing() {
        let limiter = limiter(1.0, 5);
        let now = Instant::now();
        assert_eq!(limiter.acquire_n(&"a", 4, now), Ok(()));
        assert!(limiter.acquire_n(&"a", 2, now).is_err());
        assert_eq!(limiter.acquire_n(&"a", 1, now), Ok(()));
    }

    #[test]
    fn idle_buckets_are_pruned() {
        let limiter = limiter(100.0, 10);
        let now = Instant::now();
        limiter.acquire(&"a", now).unwrap();
        limiter
            .acquire(&"b", now + Duration::from_millis(90))
            .unwrap();
        assert_eq!(limiter.prune(now + Duration::from_millis(120)), 1);
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn zero_rate_never_refills() {
        let limiter = limiter(0.0, 1);
        let now = Instant::now();
        limiter.acquire(&"a", now).unwrap();
        assert_eq!(limiter.acquire(&"a", now), Err(Duration::MAX));
        assert_eq!(
            RateSettings::default().refill_time(),
            Duration::from_secs(2)
        );
    }
}
