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
//! interrupts is restarted (`SA_RESTART`) or returns `EINTR` as for any signal. Each entry's five
//! bytes are stored with one aligned 8-byte store (a function entry is 16-byte aligned), so a
//! thread fetching them sees the old bytes or the new ones, never a mix.
//!
//! ### Threads that block every signal
//!
//! Some libraries' threads block every signal: Mesa's (its shader disk-cache queue `…:disk$0`,
//! llvmpipe's workers, GPU drivers' queue threads), so every game or GUI using OpenGL or Vulkan
//! on Linux has some. Such a thread cannot be stopped, so it is not signalled: the write goes
//! ahead only if it is proven to run no instruction meanwhile. With the other threads stopped,
//! it must be asleep in the kernel (`S` or `D` in `/proc/self/task/<tid>/status`); the kernel
//! gives its user stack pointer and instruction (`/proc/self/task/<tid>/syscall`) only for a
//! thread off its CPU and off the run queue; those pass the same check as a stopped thread's.
//! After the write, it must still be asleep at the same place with the same count of context
//! switches: a sleeping thread that was scheduled meanwhile has switched out again, which counts.
//! Then every thread is made to serialise (`membarrier`, sync-core) before it runs user code
//! again. If it was running, or ran meanwhile (a timer, I/O or another process woke it: this
//! process's other threads are all stopped), the bytes are put back while the others are still
//! stopped, and the stop is retried like one that found a thread inside the bytes; after half a
//! second the patch is refused, naming the thread ("blocks the stop signal, so it cannot be
//! stopped, and it was running during every attempt"), with nothing changed. An idle queue
//! thread (Mesa's disk cache, asleep on a condition variable) never stops a patch; a busy one
//! (llvmpipe rendering a frame) makes the attempts that meet it retry.
//!
//! Threads are classified at the start of each attempt. One that a library starts later, with
//! every signal blocked (Mesa starts its queues during the first frames), would keep the stop
//! waiting for it until the pause limit: a thread that has not parked 5 ms after the first
//! signal and sleeps with the stop signal blocked ends the attempt at once, and the next one
//! classifies it. Past half a second of such attempts the patch is refused, naming the thread.
//!
//! What is proven and what is not: a thread that stays asleep throughout is exactly as safe as a
//! stopped one. A thread woken from outside the process in the few microseconds between the last
//! check before the store and the store, that at once runs the old first instruction of the very
//! function being written and its next one after the store, runs bytes of the jump: the checks
//! after the write see it ran and the write is undone, but not what it ran. A function whose
//! first instruction is 5 bytes or longer is safe even then.
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
//! functions a patch redirects and the pause expected from the process's threads now (and how
//! many of them block the stop signal and are checked asleep instead); `status`
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
//! - A thread that blocks every signal must be asleep in the kernel while the bytes are written
//!   (above): one that keeps running (llvmpipe's workers rendering every frame) makes the patch
//!   retry, then refuse naming it. A game rendering with software GL takes entry redirects
//!   reliably with `LP_NUM_THREADS=0` (llvmpipe renders on the calling thread).
//! - Only functions of the executable are redirected, and each keeps its 16-byte slot for the
//!   rest of the process (a thread may be passing through it).
//! - What the old machine code of other functions baked in (a constant return value, an inlined
//!   copy) is the tool's to find: it redirects the callers whose code changed too.
