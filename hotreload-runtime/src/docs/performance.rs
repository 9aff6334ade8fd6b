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
//! Applying a patch (`cargo bench -p hotreload-tests --bench patch_cycle`, one-line edit of the
//! fixture's `logic` crate, medians of 15): building and applying the patch takes 160 ms,
//! against 438 ms for the incremental `cargo build` of the same edit (0.37x). Of that, rustc is
//! 105 ms: the crate is recompiled with incremental compilation into 256 codegen units (cargo's
//! own default), so only the units of the modules the edit touched go through LLVM again. Linking takes 18 ms (half of it starting
//! `rust-lld`), the checks (redirection, the reference graph, layouts) 8 ms; verifying (sha256,
//! signature), loading and committing take milliseconds, the commit waiting for the threads'
//! next safe point.
//!
//! Under `cargo hotpatch watch` (`cargo bench -p hotreload-tests --bench watch_cycle`), save to
//! new behaviour is 138 ms against 442 ms for rebuilding and restarting (3.2x): debounce 3 ms,
//! rustc 96 ms (started ahead of the save), checks 6 ms, link 18 ms, apply 5 ms. rustc's time
//! varies most on this 2-core machine; across runs the speed-up was 3.2x to 3.3x.
//!
//! `#[hot_state]` (`cargo bench -p hotreload-runtime --bench state`, same machine):
//!
//! | access | `#[hot_state]` handle | `std::sync::RwLock` |
//! | --- | --- | --- |
//! | read a field | 5.1 ns | 4.9 ns |
//! | increment a field | 4.9 ns | 4.9 ns |
//! | `lock()` + `Locked::get_mut` + increment | 5.0 ns | |
//!
//! An access is the value's own lock plus one comparison of its layout fingerprint with the one
//! the code was compiled with. Migrating 1,000,000 live values of a small struct (three fields,
//! one of them a short `String`) to a version with one more field pauses access to them for about
//! 0.28 s (median 278 ms; the rollback, 295 ms), most of it spent serialising each value into the
//! form both versions read and deserialising it; freeing the old values afterwards takes another
//! 35 ms, outside the pause. While it runs, the old and the new values are both live; glibc keeps
//! much of what the migration frees, so the process's peak RSS rose from 184 MB (the values) to
//! 720 MB in that benchmark (410 MB with `MALLOC_MMAP_THRESHOLD_=131072`).
//!
//! `HOTRELOAD_MIGRATION_THREADS=N` converts large sets (16,384 values or more) on N threads. On
//! this 2-core machine 2 threads did not shorten the pause (300 ms against 278 ms in the same
//! run): the conversion is bound by the allocator. It may pay on machines with more cores.
