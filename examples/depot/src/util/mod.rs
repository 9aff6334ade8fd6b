//! Small generic helpers the rest of the server is built from: time, retries with backoff, and a
//! keyed token-bucket rate limiter.

pub mod backoff;
pub mod clock;
pub mod rate;

pub use backoff::{retry, retry_blocking, Backoff, RetryError, RetryPolicy};
pub use clock::{unix_millis, Millis};
pub use rate::{RateLimiter, RateSettings};
