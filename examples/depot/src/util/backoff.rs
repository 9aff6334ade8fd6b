//! Retrying a fallible operation with exponential backoff, for async code ([`retry`]) and for
//! threads that may block ([`retry_blocking`]). The snapshot writer retries a failed write with it,
//! the client retries connecting, the queues use [`Backoff`] to delay a failed job.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Exponential backoff: `initial_ms * 2^attempt`, capped at `max_ms`, with up to `jitter_percent`
/// taken off at random so that many clients retrying together spread out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Backoff {
    pub initial_ms: u64,
    pub max_ms: u64,
    pub jitter_percent: u8,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_ms: 100,
            max_ms: 30_000,
            jitter_percent: 20,
        }
    }
}

impl Backoff {
    /// A backoff without jitter: every delay is exactly predictable (tests, and queues whose
    /// delays a client may want to rely on).
    pub fn exact(initial_ms: u64, max_ms: u64) -> Self {
        Backoff {
            initial_ms,
            max_ms,
            jitter_percent: 0,
        }
    }

    /// The delay before retry number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u64.checked_shl(attempt.min(63)).unwrap_or(u64::MAX);
        let base = self.initial_ms.saturating_mul(factor).min(self.max_ms);
        let jitter = u64::from(self.jitter_percent.min(100));
        if jitter == 0 || base == 0 {
            return Duration::from_millis(base);
        }
        let spread = base * jitter / 100;
        let taken = random_below(spread + 1);
        Duration::from_millis(base - taken)
    }

    /// The delays of the first `attempts` retries.
    pub fn delays(&self, attempts: u32) -> impl Iterator<Item = Duration> + '_ {
        (0..attempts).map(|attempt| self.delay(attempt))
    }
}

/// A number in `0..bound` from the standard library's per-process random hasher keys: enough to
/// spread retries, without a dependency on a random number crate.
fn random_below(bound: u64) -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(bound);
    hasher.finish() % bound.max(1)
}

/// How often to try and how long to wait between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// Tries in all, the first included (at least 1).
    pub attempts: u32,
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: Backoff::default(),
        }
    }
}

/// Why [`retry`] gave up: the last error, and how many tries were made.
#[derive(Debug, PartialEq, Eq)]
pub struct RetryError<E> {
    pub attempts: u32,
    pub last: E,
}

impl<E: std::fmt::Display> std::fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "gave up after {} attempt(s): {}",
            self.attempts, self.last
        )
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.last)
    }
}

/// Runs `operation` until it succeeds, `policy.attempts` tries have failed, or `retryable` says
/// an error is final. `operation` gets the number of the try (0 first).
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    mut operation: F,
    retryable: impl Fn(&E) -> bool,
) -> Result<T, RetryError<E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let attempts = policy.attempts.max(1);
    let mut attempt = 0;
    loop {
        match operation(attempt).await {
            Ok(value) => return Ok(value),
            Err(error) if attempt + 1 >= attempts || !retryable(&error) => {
                return Err(RetryError {
                    attempts: attempt + 1,
                    last: error,
                })
            }
            Err(_) => {
                tokio::time::sleep(policy.backoff.delay(attempt)).await;
                attempt += 1;
            }
        }
    }
}

/// [`retry`] for a thread that may block: `sleep` waits between tries (`std::thread::sleep`, or
/// a sleep that lets patches commit meanwhile).
pub fn retry_blocking<T, E>(
    policy: &RetryPolicy,
    mut operation: impl FnMut(u32) -> Result<T, E>,
    retryable: impl Fn(&E) -> bool,
    mut sleep: impl FnMut(Duration),
) -> Result<T, RetryError<E>> {
    let attempts = policy.attempts.max(1);
    let mut attempt = 0;
    loop {
        match operation(attempt) {
            Ok(value) => return Ok(value),
            Err(error) if attempt + 1 >= attempts || !retryable(&error) => {
                return Err(RetryError {
                    attempts: attempt + 1,
                    last: error,
                })
            }
            Err(_) => {
                sleep(policy.backoff.delay(attempt));
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn delays_double_up_to_the_cap() {
        let backoff = Backoff::exact(10, 70);
        let delays: Vec<u64> = backoff.delays(5).map(|d| d.as_millis() as u64).collect();
        assert_eq!(delays, [10, 20, 40, 70, 70]);
        assert_eq!(backoff.delay(200), Duration::from_millis(70));
    }

    #[test]
    fn jitter_only_shortens() {
        let backoff = Backoff {
            initial_ms: 1000,
            max_ms: 1000,
            jitter_percent: 50,
        };
        for attempt in 0..50 {
            let delay = backoff.delay(attempt).as_millis();
            assert!((500..=1000).contains(&delay), "{delay}");
        }
    }

    #[test]
    fn blocking_retry_stops_at_the_first_success() {
        let slept = Cell::new(Duration::ZERO);
        let policy = RetryPolicy {
            attempts: 5,
            backoff: Backoff::exact(1, 1),
        };
        let result = retry_blocking(
            &policy,
            |attempt| {
                if attempt < 2 {
                    Err("busy")
                } else {
                    Ok(attempt)
                }
            },
            |_| true,
            |delay| slept.set(slept.get() + delay),
        );
        assert_eq!(result, Ok(2));
        assert_eq!(slept.get(), Duration::from_millis(2));
    }

    #[test]
    fn blocking_retry_gives_up_on_a_final_error() {
        let policy = RetryPolicy::default();
        let result: Result<(), _> =
            retry_blocking(&policy, |_| Err("denied"), |e| *e != "denied", |_| {});
        assert_eq!(
            result,
            Err(RetryError {
                attempts: 1,
                last: "denied"
            })
        );
    }

    #[tokio::test]
    async fn async_retry_counts_its_attempts() {
        let policy = RetryPolicy {
            attempts: 3,
            backoff: Backoff::exact(1, 1),
        };
        let result: Result<(), RetryError<String>> = retry(
            &policy,
            |n| async move { Err(format!("try {n}")) },
            |_| true,
        )
        .await;
        let error = result.unwrap_err();
        assert_eq!(error.attempts, 3);
        assert_eq!(error.to_string(), "gave up after 3 attempt(s): try 2");
    }
}
