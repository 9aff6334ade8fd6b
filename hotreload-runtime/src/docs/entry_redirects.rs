//! # Entry redirects: every changed function takes effect
//!
//! A `#[hot]` function is called through its slot, swapped at a safe point. Every other changed
//! function of the running program (a plain library function, a helper in `main.rs`, a small
//! leaf another crate inlined) takes effect by **entry redirection**: its first five bytes become
//! `jmp rel32` to a 16-byte slot mapped within ±2 GiB of it, and the slot jumps into the patch
//! library (`jmp [rip+2]` and an aligned 8-byte target). A patch lists these functions in its
//! manifest (`entry_redirects`); [`entry`](crate::entry) is the mechanism.
//!
//! ## What you can rely on
//!
//! - Calls already running finish on the old code.
//! - Every call that starts after the apply returns runs the new code: in every thread, whoever
//!   calls, including through function pointers and vtables taken before the patch.
//! - `#[hot]` functions keep their table path (no entry jump) and their safe-point consistency.
//! - All or nothing, with the slots: if one entry cannot be written the patch is refused and
//!   nothing changes (no slot swapped, no state migrated, no entry written).
//! - Patches stack: a later patch retargets the functions both redirect (one atomic store of the
//!   slot's target, no stop), writes the new ones and restores those it no longer lists. Rollback
//!   gives back the previous patch's redirects exactly, and the executable's own bytes when it
//!   goes back to the base.
//!
//! ## How the bytes are written
//!
//! Every other thread of the process is stopped once per patch: a real-time signal
//! (`SIGRTMIN + 5`) per thread through `tgkill`, whose handler records where the thread is and
//! sleeps on a futex; the applying thread sleeps too, never spins. Then no stopped thread may be
//! inside `entry+1 ..= entry+4` of a function being written, neither at its instruction nor
//! anywhere on its stack (a return address, or an instruction a signal handler interrupted): if
//! one is, the threads are released and the stop is retried for up to half a second, then the
//! patch is refused naming the function and the thread. The code pages are writable only while
//! the threads are stopped; nothing allocates, prints or takes a lock meanwhile. Returning from
//! the signal serialises each thread before it runs the new bytes. A system call the signal
//! interrupts is restarted (`SA_RESTART`) or returns `EINTR` as for any signal.
//!
//! ## Preconditions, checked before anything is written
//!
//! - Five bytes of room: the function is at least 5 bytes long, or `int3`/`nop` padding follows
//!   it up to 5 bytes (about 1 function in 6,000 of a release binary has no room: refused, restart
//!   to run the change).
//! - The first bytes are the executable's own (compared with `/proc/self/exe`): a debugger's
//!   breakpoint or another patcher's jump is refused.
//! - Names sharing one address (merged functions) are one function, written once, and must get
//!   the same new code.
//! - Nothing jumps into `entry+1 ..= entry+4` (the tool checks the binary's branches).
//!
//! ## Development and production
//!
//! An app started by `cargo hotpatch run` or `watch` (linked to the tool) redirects entries by
//! default. Any other process refuses a patch with entry redirects unless the apply allows it:
//! `cargo hotpatch apply --allow-entry-redirects` (the control request's `allow_entry_redirects`),
//! or `HOTRELOAD_ALLOW_ENTRY_REDIRECTS=1` in the process (for the patches of its
//! `HOTRELOAD_PATCH_DIR`). The pause is bounded by `HOTRELOAD_MAX_PAUSE_MS` (default 100, and
//! 1000 under `run`/`watch`, where a refusal costs a restart): if
//! stopping the threads takes longer, they are released, nothing is written, and the patch is
//! refused unchanged, naming the pause and the setting. `cargo hotpatch check` reports how many
//! functions a patch redirects and the pause expected from the process's threads now; `status`
//! and the history report how many are redirected and the last pause.
//!
//! ## What it costs
//!
//! The pause grows with the threads that must be scheduled to take the signal: tens of
//! microseconds for a few idle threads, about a millisecond for 64 idle ones, and for busy threads
//! roughly (runnable threads ÷ cores) × a scheduler time slice. A call through a redirected entry
//! costs two extra jumps (a few nanoseconds). `benches/entry_redirect.rs` measures both.
//!
//! ## Limits
//!
//! - x86-64 Linux only; elsewhere such a patch is refused.
//! - A thread that blocks every signal cannot be stopped, so every such patch is refused for the
//!   pause limit (nothing is written). Mesa's llvmpipe worker threads do this: a game rendering
//!   with software GL takes entry redirects with `LP_NUM_THREADS=0`.
//! - Only functions of the executable are redirected, and each keeps its 16-byte slot for the
//!   rest of the process (a thread may be passing through it).
//! - What the old machine code of other functions baked in (a constant return value, an inlined
//!   copy) is the tool's to find: it redirects the callers whose code changed too.
