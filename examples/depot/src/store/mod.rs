//! The key-value store: typed values in a [`TtlCache`] behind one lock.

pub mod cache;
pub mod glob;
pub mod kv;
pub mod value;

pub use cache::{CacheStats, Evicted, TtlCache};
pub use kv::{KvStore, SetCondition, Value};
