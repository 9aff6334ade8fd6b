//! # What it costs
//!
//! Measured with `cargo bench -p hotreload-runtime --bench dispatch` on a 2-core machine:
//!
//! | call | median |
//! | --- | --- |
//! | direct (`#[inline(never)]`) | 1.6 ns |
//! | through an atomic function pointer | 2.0 ns |
//! | `#[hot]` function | 1.8 ns |
//! | `#[hot]` method | 1.8 ns |
//! | `#[hot] async fn` | 20 ns (one boxed future per call) |
//! | idle [`safe_point`](crate::safe_point) | 0.3 ns |
//!
//! A `#[hot]` call is one atomic load and an indirect call: no lock, no hash lookup, no
//! allocation. An app that never patches runs at that speed; `init()` without configuration does
//! nothing more.
//!
//! Applying a patch (`cargo bench -p cargo-hotpatch --bench patch_cycle`): building a patch of a
//! small crate takes about a quarter of a second, mostly rustc; verifying (sha256, signature),
//! loading and committing it take milliseconds, the commit waiting for the threads' next safe
//! point.
