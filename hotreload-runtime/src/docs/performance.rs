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
//! After a patch under `cargo hotpatch watch` (or with `HOTRELOAD_ROLLBACK_ON_PANIC=1`), a
//! patched function's slot holds its contained entry, the original inside `catch_unwind`
//! (`hot_fn_patched`, `hot_method_patched`, `hot_lookup_patched` in the bench). Unwinding costs
//! nothing until a panic, and the panic path is out of line: in the release bench the contained
//! entry of `hot_fee` (which cannot panic) is the very instructions of its original, and that of
//! `hot_lookup` (an index that can panic) adds five to the path taken when nothing panics (it
//! keeps the arguments' copies on the stack). The calls of the binary's own code and of functions
//! no patch replaced are unchanged.
//!
//! Applying a patch (`cargo bench -p hotreload-tests --bench patch_cycle`, one-line edit of the
//! fixture's `logic` crate, medians of 9, 2-core machine): building and applying the patch takes
//! 230 ms, against 519 ms for the incremental `cargo build` of the same edit (0.44x). Of that,
//! rustc is 124 ms: the crate is recompiled with incremental compilation into four codegen units
//! per source file (16 to 256), so only the units of the modules the edit touched go through
//! LLVM again. The checks (which functions changed, redirection, the reference graph, layouts)
//! take 36 ms, linking 24 ms; verifying (sha256, signature), loading and committing take
//! milliseconds, the commit waiting for the threads' next safe point.
//!
//! Under `cargo hotpatch watch` (`cargo bench -p hotreload-tests --bench watch_cycle`), save to
//! new behaviour is 240 ms against 627 ms for rebuilding and restarting (2.6x). rustc's time
//! varies most on this machine (102 to 348 ms in that run).
//!
//! On the realistic example (`cargo bench -p hotreload-tests --bench depot_cycle`, 6,400 lines,
//! tokio, tracing, serde), save to new reply is about 1.2 s against 1.5 s for `cargo build`
//! (0.76x): rustc 0.8 s, checks 0.24 s, link 0.11 s. rustc's floor there is what it redoes for
//! the whole crate on every compile (macro expansion, name resolution, the crate's metadata), not
//! the edit. A one-line edit's patch is 1.2 MB.
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
