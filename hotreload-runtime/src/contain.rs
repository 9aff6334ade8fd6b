//! Rollback on panic: a panic that unwinds out of a patch's code rolls the patch back, and the
//! call that panicked runs again on the code it replaced.
//!
//! On under `cargo hotpatch run`/`watch` (the app is linked to the tool), and in production when
//! `HOTRELOAD_ROLLBACK_ON_PANIC=1`. Then a commit writes each patched function's *contained entry*
//! to its slots (the macro generates it beside the original: the same code inside
//! `catch_unwind`), so the binary's own code and unpatched functions keep the plain call. When a
//! contained entry catches a panic it calls [`patch_panicked`], which records it and asks a
//! thread of the runtime to roll back (never the panicking thread: a rollback waits for every
//! participating thread to reach a safe point, this one included), and gives the entry the slot's
//! fallback, the plain code of the previous version, to run the call again on. What happens to
//! the call is documented in [`crate::docs::patterns`].

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use crate::slot::HotSlot;
use crate::sync::lock;
use crate::wire::protocol::PatchPanic;

/// The environment variable that turns rollback on panic on in production.
pub const ROLLBACK_ON_PANIC_ENV: &str = "HOTRELOAD_ROLLBACK_ON_PANIC";

/// How many panics `status` keeps.
const KEPT: usize = 32;

static ON: AtomicBool = AtomicBool::new(false);
/// Whether the tool started the process (then nothing goes to the audit log: it is development).
static UNDER_TOOL: AtomicBool = AtomicBool::new(false);
static SEQUENCE: AtomicU64 = AtomicU64::new(0);
static PANICS: Mutex<VecDeque<PatchPanic>> = Mutex::new(VecDeque::new());
/// Contained entries whose rollback is under way: a second panic of the same code waits for it.
static PENDING: Mutex<Vec<usize>> = Mutex::new(Vec::new());

thread_local! {
    /// Where this thread last panicked, as the panic hook saw it.
    static LAST_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Whether commits install contained entries. The first time it says so, the panic hook is
/// installed again: an app often sets its own hook after `init`, replacing ours, and a patch comes
/// later. (Chained twice, it only records the location twice.)
pub(crate) fn is_on() -> bool {
    static AT_FIRST_PATCH: Once = Once::new();
    let on = ON.load(Ordering::Relaxed);
    if on {
        AT_FIRST_PATCH.call_once(install_hook);
    }
    on
}

/// Turns rollback on panic on: `under_tool` for `cargo hotpatch run`/`watch`, otherwise because
/// [`ROLLBACK_ON_PANIC_ENV`] asked for it. Applies to commits made from now on.
pub(crate) fn turn_on(under_tool: bool) {
    static AT_INIT: Once = Once::new();
    AT_INIT.call_once(install_hook);
    UNDER_TOOL.fetch_or(under_tool, Ordering::Relaxed);
    ON.store(true, Ordering::Relaxed);
    tracing::debug!(under_tool, "rollback on panic is on");
}

/// What [`ROLLBACK_ON_PANIC_ENV`] asks for: on (`1`, `true`, `yes`), off (`0`, `false`, `no`),
/// or nothing (unset or anything else).
pub(crate) fn asked_by_env() -> Option<bool> {
    let value = std::env::var(ROLLBACK_ON_PANIC_ENV).ok()?;
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// Chains a hook before the one set now that remembers where the thread panicked: the payload a
/// contained entry catches has the message but not the location.
fn install_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        let _ = LAST_LOCATION.try_with(|last| {
            if let Ok(mut last) = last.try_borrow_mut() {
                *last = location;
            }
        });
        previous(info);
    }));
}

/// Called by a contained entry (`entry`, of the function whose slot is `slot`) that caught a
/// panic: records it, has a runtime thread roll back until the slot no longer holds `entry`, and
/// returns the code to run the call again on (the previous version's plain code) if the slot has
/// one. `rerun` says whether the entry can pass its arguments again.
#[doc(hidden)]
pub fn patch_panicked(
    slot: &'static HotSlot,
    entry: *const (),
    payload: &(dyn Any + Send),
    rerun: bool,
) -> Option<*const ()> {
    let fallback = slot.fallback();
    if lock(&PENDING).contains(&(entry as usize)) {
        // The same code panicked again before its rollback committed: already reported.
        tracing::debug!(message = %message_of(payload), "patched code panicked again");
        let _ = LAST_LOCATION.try_with(|last| last.take());
        return fallback;
    }
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed) + 1;
    let record = PatchPanic {
        sequence,
        function: String::new(),
        message: message_of(payload),
        location: LAST_LOCATION
            .try_with(|last| last.try_borrow_mut().ok().and_then(|mut l| l.take()))
            .ok()
            .flatten(),
        thread: std::thread::current()
            .name()
            .unwrap_or("<unnamed>")
            .to_owned(),
        rerun: rerun && fallback.is_some(),
        rolled_back: Vec::new(),
        error: None,
        settled: false,
    };
    tracing::error!(
        message = %record.message,
        location = record.location.as_deref().unwrap_or("unknown"),
        thread = %record.thread,
        rerun = record.rerun,
        "a patch's code panicked; rolling it back"
    );
    {
        let mut panics = lock(&PANICS);
        if panics.len() == KEPT {
            panics.pop_front();
        }
        panics.push_back(record);
    }
    request_rollback(slot, entry as usize, sequence);
    if !crate::entry::redirected_entries().is_empty() {
        // Redirected entries are the process's, not the slot's: run again before the rollback
        // restores them, the call would reach the code that panicked through one of them.
        wait_for_rollback(entry as usize);
    }
    fallback
}

/// How long a panicked call waits for its rollback before it runs again regardless.
const ROLLBACK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits, as if parked at a safe point (the rollback waits for this thread too), until the
/// rollback of `entry` is over or [`ROLLBACK_WAIT`] has passed.
fn wait_for_rollback(entry: usize) {
    crate::safe_point::blocking_at_safe_point(|| {
        let deadline = std::time::Instant::now() + ROLLBACK_WAIT;
        while lock(&PENDING).contains(&entry) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
}

/// Starts a thread that rolls back until `slot` no longer holds `entry`, unless one is at it.
fn request_rollback(slot: &'static HotSlot, entry: usize, sequence: u64) {
    {
        let mut pending = lock(&PENDING);
        if pending.contains(&entry) {
            // Another thread's panic of the same code got there first: its report stands.
            lock(&PANICS).retain(|p| p.sequence != sequence);
            return;
        }
        pending.push(entry);
    }
    let spawned = std::thread::Builder::new()
        .name("hotreload-rollback".into())
        .spawn(move || {
            roll_back_while_running(slot, entry, sequence);
            lock(&PENDING).retain(|&pending| pending != entry);
        });
    if let Err(error) = spawned {
        lock(&PENDING).retain(|&pending| pending != entry);
        settle(sequence, |record| {
            record.error = Some(format!("could not start the rollback: {error}"));
        });
    }
}

/// Rolls back the newest patch until `slot` no longer holds `entry` (normally once: the newest
/// patch brought the code that panicked), and settles panic `sequence` with what it did.
fn roll_back_while_running(slot: &'static HotSlot, entry: usize, sequence: u64) {
    let function = crate::table::Table::global()
        .key_of_slot(slot)
        .map(|key| key.to_string())
        .unwrap_or_default();
    let mut rolled_back = Vec::new();
    let mut error = None;
    while slot.get() as usize == entry {
        match crate::patch::rollback() {
            Ok(report) => rolled_back.push(report.patch_id),
            Err(failed) => {
                error = Some(failed.to_string());
                break;
            }
        }
    }
    match &error {
        None => tracing::warn!(%function, patches = ?rolled_back, "rolled back after a panic"),
        Some(error) => tracing::error!(%function, %error, "rollback after a panic failed"),
    }
    let mut audited = None;
    settle(sequence, |record| {
        record.function = function;
        record.rolled_back = rolled_back;
        record.error = error;
        audited = Some(record.clone());
    });
    if let (Some(record), false) = (audited, UNDER_TOOL.load(Ordering::Relaxed)) {
        audit(&record);
    }
}

/// Marks panic `sequence` settled after `change`.
fn settle(sequence: u64, change: impl FnOnce(&mut PatchPanic)) {
    let mut panics = lock(&PANICS);
    if let Some(record) = panics.iter_mut().find(|p| p.sequence == sequence) {
        change(record);
        record.settled = true;
    }
}

#[cfg(unix)]
fn audit(record: &PatchPanic) {
    let details = serde_json::to_value(record).unwrap_or_default();
    crate::control::audit::record_event("rollback_on_panic", details);
}

#[cfg(not(unix))]
fn audit(_record: &PatchPanic) {}

/// The panics recorded so far (the last few dozen), oldest first.
pub(crate) fn panics() -> Vec<PatchPanic> {
    lock(&PANICS).iter().cloned().collect()
}

/// The panics after number `since` whose rollback is settled, oldest first.
pub(crate) fn settled_panics(since: u64) -> Vec<PatchPanic> {
    lock(&PANICS)
        .iter()
        .filter(|p| p.sequence > since)
        .take_while(|p| p.settled)
        .cloned()
        .collect()
}

fn message_of(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a payload that is not a string".to_owned())
}

/// Whether a value of `T` can be passed to a call a second time after the first call panicked:
/// `Copy` values (shared references among them) and `&mut` references (the first call's borrow
/// ended with it). Chosen by method resolution on the concrete type
/// (`(&&Reuse::<T>::NEW).can_reuse()` with the three traits in scope).
#[doc(hidden)]
pub struct Reuse<T: ?Sized>(PhantomData<fn() -> *const T>);

impl<T: ?Sized> Reuse<T> {
    #[doc(hidden)]
    pub const NEW: Self = Reuse(PhantomData);
}

#[doc(hidden)]
pub trait ReuseCopy {
    fn can_reuse(&self) -> bool {
        true
    }
}
impl<T: Copy> ReuseCopy for &Reuse<T> {}

#[doc(hidden)]
pub trait ReuseMutRef {
    fn can_reuse(&self) -> bool {
        true
    }
}
impl<T: ?Sized> ReuseMutRef for &Reuse<&mut T> {}

#[doc(hidden)]
pub trait ReuseNot {
    fn can_reuse(&self) -> bool {
        false
    }
}
impl<T: ?Sized> ReuseNot for Reuse<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::{Reply, Response};

    #[test]
    // The borrows choose the implementation: what the macro's output writes.
    #[allow(clippy::needless_borrow)]
    fn arguments_that_can_be_passed_again_are_told_apart() {
        #[allow(unused_imports)]
        use super::{ReuseCopy as _, ReuseMutRef as _, ReuseNot as _};
        assert!((&&Reuse::<u64>::NEW).can_reuse());
        assert!((&&Reuse::<&String>::NEW).can_reuse());
        assert!((&&Reuse::<&mut Vec<u8>>::NEW).can_reuse());
        assert!(!(&&Reuse::<String>::NEW).can_reuse());
        assert!(!(&&Reuse::<Box<u64>>::NEW).can_reuse());
    }

    #[test]
    fn a_panics_reply_crosses_the_wire() {
        let reply = Response::Ok(Reply::Panics {
            panics: vec![PatchPanic {
                sequence: 1,
                function: "logic::step".into(),
                message: "index out of bounds".into(),
                location: Some("logic/src/lib.rs:3:5".into()),
                thread: "main".into(),
                rerun: true,
                rolled_back: vec!["ab".into()],
                error: None,
                settled: true,
            }],
        });
        let line = serde_json::to_string(&reply).expect("serialises");
        assert_eq!(serde_json::from_str::<Response>(&line).unwrap(), reply);
    }
}
