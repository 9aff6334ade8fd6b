//! One stop of every other thread of the process, for writing code bytes that threads may be
//! about to run.
//!
//! Each thread gets a real-time signal (`SIGRTMIN + 5`; `threads.rs` samples with `+ 4`) through
//! `tgkill`; its handler records where the thread was (RIP and RSP from the `ucontext`) and parks
//! on a futex until the stop is over. The stopping thread sleeps on a futex the handlers wake, and
//! lists `/proc/self/task` again once every listed thread is parked, so that a thread created
//! meanwhile is stopped too. From the first signal to the release nothing here allocates, prints
//! or takes a lock: a stopped thread may hold the allocator's or any other lock. Returning from
//! the handler (`rt_sigreturn`, through `iret`) serialises the thread before it runs written bytes.

use std::ffi::c_void;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use super::blocked::asleep_blocking;

/// The most threads one stop handles; a process with more is refused.
pub(super) const MAX_THREADS: usize = 4096;
/// A thread that left after it was listed.
const GONE: i32 = -1;

struct Parked {
    tid: AtomicI32,
    /// The stop's generation once the thread is parked in it.
    generation: AtomicU32,
    rip: AtomicUsize,
    rsp: AtomicUsize,
}

static PARKED: [Parked; MAX_THREADS] = [const {
    Parked {
        tid: AtomicI32::new(0),
        generation: AtomicU32::new(0),
        rip: AtomicUsize::new(0),
        rsp: AtomicUsize::new(0),
    }
}; MAX_THREADS];
/// How many entries of [`PARKED`] the current stop uses.
static LISTED: AtomicUsize = AtomicUsize::new(0);
/// Odd while a stop is under way; handlers park until it changes.
static GENERATION: AtomicU32 = AtomicU32::new(0);
/// Bumped by each handler that parks; the stopping thread sleeps on it.
static ARRIVED: AtomicU32 = AtomicU32::new(0);

/// The signal that stops a thread.
pub(super) fn stop_signal() -> libc::c_int {
    libc::SIGRTMIN() + 5
}

/// A thread stopped by a [`Stop`], as its handler found it.
#[derive(Debug, Clone, Copy)]
pub(super) struct StoppedThread {
    pub(super) tid: i32,
    pub(super) rip: usize,
    pub(super) rsp: usize,
}

/// Why the threads could not all be stopped.
#[derive(Debug)]
pub(super) enum StopError {
    /// Stopping took longer than allowed; `tid` had not stopped (`None`: all had, too late).
    TooLong { tid: Option<i32>, threads: usize },
    /// More threads than [`MAX_THREADS`].
    TooManyThreads(usize),
    /// `/proc/self/task` could not be listed.
    List(std::io::Error),
    /// `tid` sleeps with the stop signal blocked: it began blocking it after the threads were
    /// classified (a library's thread started meanwhile), so it will not stop; classify again.
    BlocksStopSignal { tid: i32, waited: Duration },
}

/// Every other thread of the process parked in the signal handler, until [`Stop::release`] (or
/// drop). One at a time: the caller holds the entry registry's lock.
pub(super) struct Stop {
    generation: u32,
    started: Instant,
    released: bool,
}

/// A buffer for listing thread ids without allocating while threads are stopped.
pub(super) struct TaskList {
    bytes: Vec<u8>,
    pub(super) tids: Vec<i32>,
}

impl TaskList {
    pub(super) fn new() -> TaskList {
        TaskList {
            bytes: vec![0; 64 << 10],
            tids: Vec::with_capacity(MAX_THREADS + 1),
        }
    }
}

impl Stop {
    /// Stops every thread of the process but the calling one and those in `skip` (threads that
    /// block the signal, `foreign.rs`), within `limit` from the first signal; past it, releases
    /// the ones stopped and says which did not stop.
    pub(super) fn begin(
        limit: Duration,
        tasks: &mut TaskList,
        skip: &[i32],
    ) -> Result<Stop, StopError> {
        install_handler();
        // SAFETY: `gettid` has no preconditions.
        let me = unsafe { libc::gettid() };
        let generation = GENERATION.load(Ordering::Relaxed).wrapping_add(1) | 1;
        LISTED.store(0, Ordering::SeqCst);
        GENERATION.store(generation, Ordering::SeqCst);
        let stop = Stop {
            generation,
            started: Instant::now(),
            released: false,
        };
        let deadline = stop.started + limit;
        loop {
            list_tasks(tasks).map_err(StopError::List)?;
            if tasks.tids.len() > MAX_THREADS {
                return Err(StopError::TooManyThreads(tasks.tids.len()));
            }
            let fresh = stop.signal_new(tasks, me, skip)?;
            if fresh == 0 {
                if stop.started.elapsed() > limit {
                    let threads = LISTED.load(Ordering::SeqCst);
                    return Err(StopError::TooLong { tid: None, threads });
                }
                return Ok(stop);
            }
            stop.wait_parked(deadline)?;
        }
    }

    /// Lists and signals the listed threads not signalled yet; returns how many.
    fn signal_new(&self, tasks: &TaskList, me: i32, skip: &[i32]) -> Result<usize, StopError> {
        // SAFETY: `getpid` has no preconditions.
        let pid = unsafe { libc::getpid() };
        let mut fresh = 0;
        let others = tasks
            .tids
            .iter()
            .filter(|&&tid| tid != me && !skip.contains(&tid));
        for &tid in others {
            let listed = LISTED.load(Ordering::Relaxed);
            if PARKED[..listed]
                .iter()
                .any(|p| p.tid.load(Ordering::Relaxed) == tid)
            {
                continue;
            }
            if listed == MAX_THREADS {
                return Err(StopError::TooManyThreads(tasks.tids.len()));
            }
            PARKED[listed].tid.store(tid, Ordering::Relaxed);
            PARKED[listed].generation.store(0, Ordering::Relaxed);
            LISTED.store(listed + 1, Ordering::SeqCst);
            // SAFETY: `tgkill` to a thread of this process with a signal whose handler is set.
            if unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, stop_signal()) } != 0 {
                PARKED[listed].tid.store(GONE, Ordering::Relaxed);
            }
            fresh += 1;
        }
        Ok(fresh)
    }

    /// Sleeps until every signalled thread is parked or gone, or `deadline`.
    fn wait_parked(&self, deadline: Instant) -> Result<(), StopError> {
        // SAFETY: `getpid` has no preconditions.
        let pid = unsafe { libc::getpid() };
        loop {
            let arrived = ARRIVED.load(Ordering::SeqCst);
            let listed = LISTED.load(Ordering::SeqCst);
            let waiting = PARKED[..listed].iter().find(|p| {
                let tid = p.tid.load(Ordering::Relaxed);
                tid != GONE && p.generation.load(Ordering::Acquire) != self.generation
            });
            let Some(waiting) = waiting else {
                return Ok(());
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(StopError::TooLong {
                    tid: Some(waiting.tid.load(Ordering::Relaxed)),
                    threads: listed,
                });
            }
            let tid = waiting.tid.load(Ordering::Relaxed);
            // SAFETY: signal 0 only asks whether the thread still exists.
            if unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, 0) } != 0 {
                waiting.tid.store(GONE, Ordering::Relaxed);
                continue;
            }
            if now - self.started > LATE_CHECK_AFTER && asleep_blocking(tid, stop_signal()) {
                let waited = now - self.started;
                return Err(StopError::BlocksStopSignal { tid, waited });
            }
            // Sleep until a handler arrives; wake up now and then to notice threads that left.
            futex_wait(
                &ARRIVED,
                arrived,
                (deadline - now).min(Duration::from_millis(1)),
            );
        }
    }

    /// The threads stopped now, with where each was.
    pub(super) fn threads(&self) -> impl Iterator<Item = StoppedThread> + '_ {
        let listed = LISTED.load(Ordering::SeqCst);
        PARKED[..listed]
            .iter()
            .filter(move |p| p.generation.load(Ordering::Acquire) == self.generation)
            .map(|p| StoppedThread {
                tid: p.tid.load(Ordering::Relaxed),
                rip: p.rip.load(Ordering::Relaxed),
                rsp: p.rsp.load(Ordering::Relaxed),
            })
    }

    /// Lets every thread go on; returns how long they were stopped, from the first signal.
    pub(super) fn release(mut self) -> Duration {
        self.released = true;
        release(self.generation);
        self.started.elapsed()
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        if !self.released {
            release(self.generation);
        }
    }
}

/// How long a thread may take to park before it is checked for sleeping with the stop signal
/// blocked: one running or just woken parks well within it.
const LATE_CHECK_AFTER: Duration = Duration::from_millis(5);

fn release(generation: u32) {
    GENERATION.store(generation.wrapping_add(1), Ordering::SeqCst);
    futex_wake_all(&GENERATION);
}

fn install_handler() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: an all-zero `sigaction` is valid (empty mask); `on_stop` only uses atomics and
        // the `gettid` and `futex` system calls, which are async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_stop as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
            libc::sigaction(stop_signal(), &action, std::ptr::null_mut());
        }
    });
}

extern "C" fn on_stop(_signal: libc::c_int, _info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: `__errno_location` returns this thread's errno, valid for the thread's life.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: as above.
    let saved = unsafe { *errno };
    let generation = GENERATION.load(Ordering::SeqCst);
    if generation % 2 == 1 && !context.is_null() {
        // SAFETY: for an `SA_SIGINFO` handler the kernel passes the interrupted `ucontext_t`.
        let registers = unsafe { &(*context.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
        let rip = registers[libc::REG_RIP as usize] as usize;
        let rsp = registers[libc::REG_RSP as usize] as usize;
        park(generation, rip, rsp);
    }
    // SAFETY: as above.
    unsafe { *errno = saved };
}

/// Whether `tid` parked in the last stop, which is over: until it has returned from the handler,
/// the stop signal is blocked in it, as in a thread that blocks it for good (`foreign.rs`).
pub(super) fn parked_in_last_stop(tid: i32) -> bool {
    let generation = GENERATION.load(Ordering::SeqCst);
    let listed = LISTED.load(Ordering::SeqCst);
    generation % 2 == 0
        && PARKED[..listed].iter().any(|p| {
            p.tid.load(Ordering::Relaxed) == tid
                && p.generation.load(Ordering::Acquire) == generation.wrapping_sub(1)
        })
}

/// Records where this thread is in its entry of the stop `generation` and sleeps until the stop
/// is over. A signal left over from an earlier stop finds no entry, or parks in this one (which
/// stops the thread as intended).
fn park(generation: u32, rip: usize, rsp: usize) {
    // SAFETY: `gettid` is async-signal-safe.
    let tid = unsafe { libc::gettid() };
    let listed = LISTED.load(Ordering::SeqCst);
    let Some(entry) = PARKED[..listed]
        .iter()
        .find(|p| p.tid.load(Ordering::Relaxed) == tid)
    else {
        return;
    };
    entry.rip.store(rip, Ordering::Relaxed);
    entry.rsp.store(rsp, Ordering::Relaxed);
    entry.generation.store(generation, Ordering::Release);
    ARRIVED.fetch_add(1, Ordering::SeqCst);
    futex_wake_all(&ARRIVED);
    while GENERATION.load(Ordering::SeqCst) == generation {
        futex_wait(&GENERATION, generation, Duration::from_secs(1));
    }
}

/// Sleeps while `word` holds `expected`, at most `timeout` (a signal may end it sooner).
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a valid, aligned u32 for the call; `timeout` lives across it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &timeout as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32 for the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Fills `tasks.tids` with the process's threads, from `/proc/self/task` read with raw system
/// calls into `tasks.bytes` (no allocation: threads may be stopped).
pub(super) fn list_tasks(tasks: &mut TaskList) -> Result<(), std::io::Error> {
    tasks.tids.clear();
    // SAFETY: the path is a NUL-terminated constant.
    let fd = unsafe {
        libc::open(
            c"/proc/self/task".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let result = read_entries(fd, tasks);
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    result
}

fn read_entries(fd: libc::c_int, tasks: &mut TaskList) -> Result<(), std::io::Error> {
    loop {
        // SAFETY: `bytes` is valid for writes of its length.
        let read = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd,
                tasks.bytes.as_mut_ptr(),
                tasks.bytes.len(),
            )
        };
        if read < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if read == 0 {
            return Ok(());
        }
        let mut at = 0usize;
        while at + 19 < read as usize {
            // linux_dirent64: u64 inode, i64 offset, u16 record length, u8 type, name.
            let record = &tasks.bytes[at..read as usize];
            let length = usize::from(u16::from_ne_bytes([record[16], record[17]]));
            let name = &record[19..length.min(record.len())];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if let Some(tid) = parse_tid(name) {
                if tasks.tids.len() < tasks.tids.capacity() {
                    tasks.tids.push(tid);
                }
            }
            if length == 0 {
                break;
            }
            at += length;
        }
    }
}

fn parse_tid(name: &[u8]) -> Option<i32> {
    if name.is_empty() || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    name.iter().try_fold(0i32, |n, &d| {
        n.checked_mul(10)?.checked_add(i32::from(d - b'0'))
    })
}
