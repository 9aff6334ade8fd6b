//! # Patterns
//!
//! ## Put the code you want to change in library crates
//! A patch rebuilds library crates of the workspace; the binary crate (`main.rs`) is never
//! patched, and a change to it rebuilds and restarts the app (`cargo hotpatch watch`). Keep `main`
//! to set-up and the loop, and the logic in a library crate the binary calls.
//!
//! ## Make the entry points `#[hot]`
//! New code runs from the `#[hot]` functions the old code calls: a patch swaps their table slots.
//! Everything those functions call inside the patched crate runs the new code too (the patch binds
//! calls to its own copies). A non-hot function called only from the unpatched binary keeps its
//! old code: make the functions your loop or your request handlers call `#[hot]`.
//!
//! ```
//! use hotreload_runtime::hot;
//!
//! pub struct Request { pub amount: u64 }
//!
//! #[hot]
//! pub fn handle(request: &Request) -> u64 {
//!     fee(request.amount) // runs the patch's `fee` when `handle` is patched
//! }
//!
//! fn fee(amount: u64) -> u64 {
//!     amount / 100
//! }
//! # assert_eq!(handle(&Request { amount: 500 }), 5);
//! ```
//!
//! ## Give each loop a safe point
//! Call [`safe_point`](crate::safe_point) where a thread holds nothing from code a patch may
//! replace: the top of a loop, between requests. A commit waits for every thread that calls it, so
//! between two safe points a thread sees all of a patch or none of it. A thread that blocks (a
//! sleep, a socket read, a channel) does it inside
//! [`blocking_at_safe_point`](crate::blocking_at_safe_point), so commits do not wait for it.
//!
//! ```
//! # use std::time::Duration;
//! hotreload_runtime::init();
//! for _ in 0..3 {
//!     // serve_one_batch();
//!     hotreload_runtime::safe_point();
//!     hotreload_runtime::blocking_at_safe_point(|| std::thread::sleep(Duration::from_millis(1)));
//! }
//! ```
//!
//! ## Keep state where patches share it
//! Public statics and thread-locals are shared with patches through the dynamic loader. Private
//! ones are shared too at low optimisation levels, through redirected references; where the
//! optimiser reads a private static directly, a patch that touches it is refused, naming it: make
//! such state `pub`.
//!
//! ## Trace hot code as usual
//! `#[tracing::instrument]` and tracing's event macros work in patched code. Each span or event
//! makes a private callsite static; a patch gets fresh copies of the callsites of its code, and
//! that is harmless by construction: a callsite caches only its subscriber's interest, and a
//! fresh one registers itself with the dispatcher the first time it is reached, as it would in
//! a fresh build, so the subscriber sees one more registration per callsite and patch, and every
//! event and span after the patch. (The running copy cannot be shared: even at opt-level 0 the
//! macros' code reads the callsite's metadata directly, and its metadata points back at it.)
//! Patch libraries stay mapped, so the dispatcher's list of callsites stays valid. A lazily
//! initialised private static (`LazyLock`, `once_cell`'s `Lazy`) is shared like any other
//! private static at opt-level 0, so its value is initialised once; where the optimiser reads
//! it directly the patch is refused, naming it.
//!
//! The order of `#[hot]` and `#[tracing::instrument]` (or any attribute macro) on a function does
//! not matter: written below `#[hot]`, they still expand first, into the body a patch replaces.
//! On a method of a `#[hot]` impl block they wrap the method's entry, which a running process
//! keeps: a patch of the method's body applies, a change to its attribute macros is refused.
//!
//! ## Keep long-lived values in `#[hot_state]` storage
//! A value that outlives a patch and whose type may change (a session, a connection's state, an
//! order book) belongs in [`Handle`](crate::state::Handle) or [`Singleton`](crate::state::Singleton)
//! storage, with a version: a patch that changes the type migrates it. Reach it from hot code, and
//! where threads do not call `safe_point()` (tokio workers), take its lock before calling the hot
//! function, so code and value switch together:
//!
//! ```
//! use hotreload_runtime::{hot, hot_state, state::{Handle, Locked}};
//! use serde::{Deserialize, Serialize};
//!
//! #[hot_state(version = 1)]
//! #[derive(Serialize, Deserialize, Default)]
//! pub struct Session { pub requests: u64 }
//!
//! #[hot]
//! pub fn handle(session: &mut Locked<'_, Session>, _line: &str) -> String {
//!     match session.get_mut() {
//!         Ok(session) => {
//!             session.requests += 1;
//!             format!("ok {}", session.requests)
//!         }
//!         Err(error) => format!("err {error}"),
//!     }
//! }
//!
//! let session = Handle::new(Session::default());
//! let reply = {
//!     let mut locked = session.lock(); // a commit cannot swap `handle` or migrate the session now
//!     handle(&mut locked, "get")
//! };
//! assert_eq!(reply, "ok 1");
//! ```
//!
//! Do not hold a value's lock across a `safe_point()` or a long blocking call: a commit that
//! migrates the type waits for it, up to its timeout, and then gives up changing nothing.
//!
//! ## A panic in patched code rolls the patch back
//! Under `cargo hotpatch run` and `watch`, and in production with
//! `HOTRELOAD_ROLLBACK_ON_PANIC=1`, a panic that unwinds out of a patch's code does not end the
//! app:
//! - It is caught at the nearest `#[hot]` function whose patched code is running: a commit gives
//!   the slots of the functions a patch replaces their *contained entry* (the same code inside
//!   `catch_unwind`). A panic in code a patch brought in that is not `#[hot]` itself is caught at
//!   the hot function the call went through.
//! - The patch is rolled back at once, on a thread of the runtime, at the next safe point (the
//!   panicking thread never waits for the rendezvous it is part of): patches are rolled back,
//!   newest first, until the function no longer runs the code that panicked (normally the newest
//!   one), state types migrated back down as by `cargo hotpatch rollback`. `watch` shows the
//!   panic's message, location and thread and the patch rolled back; the next save patches again.
//!   In production each such rollback is a `rollback_on_panic` line of the audit log.
//! - **The call that panicked runs again, from its start, on the previous version's code**, with
//!   the same arguments, when every argument can be passed again: `Copy` values (shared
//!   references among them), `&mut` references, `&self` and `&mut self`. Its caller gets that
//!   result and never sees the panic, so a game loop's `update(&mut game, dt)` goes on. What the
//!   panicked call changed through a `&mut` before it panicked stays changed: the previous
//!   version starts from there. When the patch redirected entries of plain functions, the call
//!   waits for the rollback to restore them first (at most 5 s, as if parked at a safe point):
//!   run again sooner, it would reach the code that panicked through a redirected entry. A call
//!   whose arguments were moved into it (`String`, `Vec`, a
//!   boxed value) cannot run again: its panic goes on unwinding to its caller, as it would without
//!   hot reloading, once the rollback was asked for. An `async fn`'s panics happen while its
//!   future is polled and are not contained.
//! - A function whose panics are part of its contract (its callers catch them) is written
//!   `#[hot(unwinds)]`: its panics go to its caller and roll nothing back.
//!
//! The binary's own code and functions no patch replaced keep the plain call: one atomic load and
//! an indirect call. A patched function's contained entry costs no more when nothing panics (see
//! [`performance`](crate::docs::performance)). Set `HOTRELOAD_ROLLBACK_ON_PANIC=0` to keep
//! panics as they are under the tool too.
