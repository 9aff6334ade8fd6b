//! Safe points: where threads that take part in commits wait while a commit swaps the table.
//!
//! A thread takes part from its first call of [`safe_point`] until it exits. A commit raises every
//! participating thread's `SLOW` flag, waits (bounded) until each of them is parked in
//! `safe_point`, runs the swap and releases them. Between two of its safe points a participating
//! thread therefore sees either all of a commit or none of it.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

thread_local! {
    /// Whether this thread must take the slow path of [`safe_point`]: it has not enrolled yet, or
    /// a commit is waiting for it (the committer raises it). The idle cost of `safe_point` is one
    /// relaxed load of it.
    static SLOW: AtomicBool = const { AtomicBool::new(true) };
    static PARTICIPANT: Cell<Option<Participant>> = const { Cell::new(None) };
}

/// A participating thread's `SLOW` flag.
#[derive(Clone, Copy)]
struct SlowFlag(*const AtomicBool);

// SAFETY: the flag is an atomic; the pointer is only dereferenced under the coordinator's lock
// while its thread is a participant (see `LeaveOnExit`), so the thread-local it points to lives.
unsafe impl Send for SlowFlag {}

/// Marks a point where this thread holds no reference into code that a patch may replace, so a
/// pending commit may swap the table here.
///
/// The first call enrols the calling thread: from then on every commit waits (bounded) until this
/// thread is parked in `safe_point`, so a thread that calls it once per iteration of its loop sees
/// each commit between two iterations, never in the middle of one. With nothing pending it costs
/// one relaxed load of a thread-local flag.
#[inline]
pub fn safe_point() {
    if SLOW.with(|slow| slow.load(Ordering::Relaxed)) {
        safe_point_slow();
    }
}

/// Runs `blocking` (a sleep, a blocking read, waiting on a channel) as if the thread were parked in
/// [`safe_point`] all along: commits go ahead without waiting for it. If a commit is under way
/// when `blocking` returns, the thread waits for it to finish before going on, so it still never
/// sees half of one.
///
/// `blocking` must not call `#[hot]` functions: a commit may swap them while it runs.
///
/// ```
/// # use std::time::Duration;
/// loop {
///     // serve_one_batch();
///     hotreload_runtime::safe_point();
///     hotreload_runtime::blocking_at_safe_point(|| std::thread::sleep(Duration::from_millis(1)));
/// #   break;
/// }
/// ```
pub fn blocking_at_safe_point<R>(blocking: impl FnOnce() -> R) -> R {
    let id = enrol();
    {
        let shared = coordinator();
        let mut state = shared.lock();
        state.blocked.insert(id);
        shared.changed.notify_all();
    }
    // Leaves the blocked set on every path, a panic included.
    struct Unblock(u64);
    impl Drop for Unblock {
        fn drop(&mut self) {
            let shared = coordinator();
            let mut state = shared.lock();
            state.blocked.remove(&self.0);
            while state.stopping && state.committer != Some(self.0) {
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        }
    }
    let _unblock = Unblock(id);
    blocking()
}

#[cold]
#[inline(never)]
fn safe_point_slow() {
    let id = enrol();
    let coordinator = coordinator();
    let mut state = coordinator.lock();
    if !state.stopping || state.committer == Some(id) {
        // Cleared under the lock, so a committer's raise is never lost.
        SLOW.with(|slow| slow.store(false, Ordering::Relaxed));
        return;
    }
    state.parked.insert(id);
    coordinator.changed.notify_all();
    let generation = state.generation;
    while state.generation == generation {
        state = coordinator
            .changed
            .wait(state)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
}

/// Registers the calling thread as a participant (once) and returns its id.
fn enrol() -> u64 {
    if let Some(participant) = PARTICIPANT.with(|p| p.get()) {
        return participant.id;
    }
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let current = std::thread::current();
    let label = match current.name() {
        Some(name) => format!("'{name}' ({:?})", current.id()),
        None => format!("unnamed thread ({:?})", current.id()),
    };
    let flag = SlowFlag(SLOW.with(|slow| slow as *const AtomicBool));
    coordinator()
        .lock()
        .participants
        .insert(id, Member { label, flag });
    PARTICIPANT.with(|p| p.set(Some(Participant { id })));
    LEAVE_ON_EXIT.with(|_| {});
    id
}

thread_local! {
    static LEAVE_ON_EXIT: LeaveOnExit = const { LeaveOnExit };
}

/// Removes an exiting thread from the participants so commits stop waiting for it.
struct LeaveOnExit;

impl Drop for LeaveOnExit {
    fn drop(&mut self) {
        if let Ok(Some(participant)) = PARTICIPANT.try_with(|p| p.get()) {
            let coordinator = coordinator();
            let mut state = coordinator.lock();
            state.participants.remove(&participant.id);
            state.parked.remove(&participant.id);
            state.blocked.remove(&participant.id);
            coordinator.changed.notify_all();
        }
    }
}

/// A participating thread as the coordinator knows it.
struct Member {
    label: String,
    flag: SlowFlag,
}

#[derive(Clone, Copy)]
struct Participant {
    id: u64,
}

/// The participating threads a commit gave up waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotArrived {
    pub(crate) threads: Vec<String>,
}

/// Runs `swap` while every participating thread other than the caller is parked in
/// [`safe_point`]; gives up after `timeout`, leaving everything unchanged.
pub(crate) fn with_threads_parked<R>(
    timeout: Duration,
    swap: impl FnOnce() -> R,
) -> Result<R, NotArrived> {
    let me = PARTICIPANT.with(|p| p.get()).map(|p| p.id);
    let coordinator = coordinator();
    let mut state = coordinator.lock();
    state.stopping = true;
    state.committer = me;
    for (id, member) in &state.participants {
        if Some(*id) != me {
            // SAFETY: `member` is a live participant (the lock is held, and threads leave under
            // it before their thread-locals go), so its flag exists.
            unsafe { (*member.flag.0).store(true, Ordering::SeqCst) };
        }
    }
    // Released on every path, a panicking `swap` included, so no thread stays parked.
    let release = Release { coordinator };

    let deadline = Instant::now() + timeout;
    loop {
        let missing: Vec<u64> = state
            .participants
            .keys()
            .filter(|id| {
                Some(**id) != me && !state.parked.contains(id) && !state.blocked.contains(id)
            })
            .copied()
            .collect();
        if missing.is_empty() {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            let threads = missing
                .iter()
                .map(|id| state.participants[id].label.clone())
                .collect();
            release.finish(state);
            return Err(NotArrived { threads });
        }
        state = coordinator
            .changed
            .wait_timeout(state, deadline - now)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
    }
    let result = swap();
    release.finish(state);
    Ok(result)
}

struct Release {
    coordinator: &'static Coordinator,
}

impl Release {
    fn finish(self, mut state: MutexGuard<'_, CoordState>) {
        state.release();
        drop(state);
        self.coordinator.changed.notify_all();
        std::mem::forget(self);
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        // Only reached when `swap` panicked.
        self.coordinator.lock().release();
        self.coordinator.changed.notify_all();
    }
}

struct Coordinator {
    state: Mutex<CoordState>,
    changed: Condvar,
}

impl Coordinator {
    fn lock(&self) -> MutexGuard<'_, CoordState> {
        crate::sync::lock(&self.state)
    }
}

#[derive(Default)]
struct CoordState {
    /// Participant id to the thread's label (for errors) and `SLOW` flag.
    participants: BTreeMap<u64, Member>,
    parked: BTreeSet<u64>,
    /// Threads inside [`blocking_at_safe_point`]: at a safe point for as long as they block.
    blocked: BTreeSet<u64>,
    stopping: bool,
    committer: Option<u64>,
    /// Bumped at every release; parked threads wait for it to change.
    generation: u64,
}

impl CoordState {
    fn release(&mut self) {
        self.stopping = false;
        self.committer = None;
        self.parked.clear();
        self.generation = self.generation.wrapping_add(1);
    }
}

fn coordinator() -> &'static Coordinator {
    static COORDINATOR: Coordinator = Coordinator {
        state: Mutex::new(CoordState {
            participants: BTreeMap::new(),
            parked: BTreeSet::new(),
            blocked: BTreeSet::new(),
            stopping: false,
            committer: None,
            generation: 0,
        }),
        changed: Condvar::new(),
    };
    &COORDINATOR
}

/// Number of threads currently taking part in safe points.
pub fn participant_count() -> usize {
    coordinator().lock().participants.len()
}
