//! Threads that block the stop signal ("foreign" threads: Mesa's shader-cache queue, llvmpipe's
//! workers and GPU drivers' queue threads block every signal). They cannot be parked, so instead
//! of stopping them the write proves they ran no instruction meanwhile:
//!
//! 1. before the stop, `SigBlk` in `/proc/self/task/<tid>/status` says which threads block the
//!    signal, and their `status` and `syscall` files are opened (opening may allocate);
//! 2. during the stop, before the write, each is read (`pread` at offset 0 regenerates a procfs
//!    file, with no allocation here): `status` must show it asleep (`S` or `D`), then `syscall`
//!    gives its user stack pointer and instruction, and the kernel gives them only for a thread
//!    that is off its CPU and off the run queue (`wait_task_inactive`), else it says `running`.
//!    Its instruction and stack must pass the same check as a parked thread's (`scan.rs`);
//!    Once all are checked, `syscall` once more, just before the store: still off its CPU at
//!    the same place;
//! 3. after the write, `syscall` then `status` again: asleep, at the same place, with the same
//!    count of context switches. The kernel's own rule (`wait_task_inactive`): a sleeping thread
//!    that was scheduled between two such readings has switched out again, which counts. Reading
//!    `status` before the first `syscall` and after the last brackets every reading's count, so
//!    equal counts mean it was not scheduled from before the write to after it.
//!
//! What this cannot prove: a thread woken from outside the process (a timer, I/O, another
//! process; this one's other threads are stopped) in the few microseconds between the last
//! reading before the store and the store, that at once runs the first instruction of a function
//! being written, then the next after the store, runs bytes of the jump. The readings after the
//! write see it ran and the write is undone, but not what it ran. A thread asleep throughout is
//! exactly as safe as a stopped one.
//!
//! A thread that fails 2 stops the attempt before anything is written; one that fails 3 ran
//! meanwhile, and the write is undone (`write.rs`). Both are retried like a parked thread found
//! inside the bytes.

use std::ffi::CString;

use super::scan::Scanner;
use super::stop::{list_tasks, parked_in_last_stop, stop_signal, StoppedThread, TaskList};
use super::EntryError;

/// Bytes read from one procfs file (`status` is about 1.5 KiB).
const READ_LEN: usize = 8192;

/// The threads that block the stop signal, with their procfs files open.
pub(super) struct ForeignThreads {
    threads: Vec<Foreign>,
    tids: Vec<i32>,
    buffer: Vec<u8>,
}

struct Foreign {
    tid: i32,
    status: Fd,
    syscall: Fd,
    /// Where it slept before the write, in this attempt (`None`: it has left).
    before: Option<Sighting>,
}

/// A thread seen asleep: its context switches so far, and its user stack pointer and instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sighting {
    switches: u64,
    sp: usize,
    pc: usize,
}

/// Why a foreign thread did not let the write go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unproven {
    /// It was running or runnable, or ran between the readings.
    Ran { tid: i32 },
    /// Its instruction or a word of its stack is inside `entry + 1 ..= entry + 4`.
    Inside { entry: usize, tid: i32 },
}

/// A file descriptor closed on drop.
struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor was opened by `open_proc` and is closed once.
        unsafe { libc::close(self.0) };
    }
}

impl ForeignThreads {
    pub(super) fn new() -> ForeignThreads {
        ForeignThreads {
            threads: Vec::new(),
            tids: Vec::new(),
            buffer: vec![0; READ_LEN],
        }
    }

    /// Finds the listed threads (but this one) that block the stop signal now and opens their
    /// files. Before the stop: it allocates. A thread that left meanwhile is skipped.
    pub(super) fn classify(&mut self, tasks: &TaskList) -> Result<(), EntryError> {
        self.threads.clear();
        self.tids.clear();
        // SAFETY: `gettid` has no preconditions.
        let me = unsafe { libc::gettid() };
        for &tid in tasks.tids.iter().filter(|&&tid| tid != me) {
            let Ok(status) = std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
            else {
                continue;
            };
            if !blocks_signal(&status, stop_signal()) || returning_from_stop(tid, &status) {
                continue;
            }
            let (status, syscall) = match (open_proc(tid, "status"), open_proc(tid, "syscall")) {
                (Ok(status), Ok(syscall)) => (status, syscall),
                _ if !alive(tid) => continue,
                (Err(error), _) | (_, Err(error)) => {
                    return Err(EntryError::Os {
                        what: "opening /proc/self/task/<tid>/status and syscall of a thread that blocks the stop signal (needed to check it is asleep)",
                        error: error.to_string(),
                    })
                }
            };
            self.tids.push(tid);
            self.threads.push(Foreign {
                tid,
                status,
                syscall,
                before: None,
            });
        }
        Ok(())
    }

    /// The threads found by [`classify`](Self::classify): not to be signalled.
    pub(super) fn tids(&self) -> &[i32] {
        &self.tids
    }

    /// How many there are.
    pub(super) fn len(&self) -> usize {
        self.threads.len()
    }

    /// Before the write, with the other threads stopped: each foreign thread must be asleep in
    /// the kernel outside the bytes to be written. Allocates nothing.
    pub(super) fn check_before(&mut self, scanner: &mut Scanner) -> Result<(), Unproven> {
        for thread in &mut self.threads {
            let tid = thread.tid;
            thread.before = None;
            // A file that cannot be read proves nothing, unless the thread has left.
            let Some((state, switches)) = read(&thread.status, &mut self.buffer, parse_status)
            else {
                gone_or_unproven(tid)?;
                continue;
            };
            if !asleep(state) {
                return Err(Unproven::Ran { tid });
            }
            let Some(place) = read(&thread.syscall, &mut self.buffer, parse_syscall) else {
                gone_or_unproven(tid)?;
                continue;
            };
            let (sp, pc) = place.ok_or(Unproven::Ran { tid })?;
            let stopped = StoppedThread {
                tid,
                rip: pc,
                rsp: sp,
            };
            if let Some(entry) = scanner.entry_inside(&stopped) {
                return Err(Unproven::Inside { entry, tid });
            }
            thread.before = Some(Sighting { switches, sp, pc });
        }
        Ok(())
    }

    /// Just before the write, once every thread has been checked: each foreign thread seen
    /// asleep is still off its CPU at the same place. The proof's first reading is then this one,
    /// so a thread woken from outside the process while the others were checked is caught before
    /// anything is written, and the window left (from this reading to the store) is a few system
    /// calls long. Allocates nothing.
    pub(super) fn confirm_before(&mut self) -> Result<(), Unproven> {
        for thread in &self.threads {
            let Some(before) = thread.before else {
                continue;
            };
            let ran = Unproven::Ran { tid: thread.tid };
            let place = read(&thread.syscall, &mut self.buffer, parse_syscall).ok_or(ran)?;
            if place != Some((before.sp, before.pc)) {
                return Err(ran);
            }
        }
        Ok(())
    }

    /// After the write: each foreign thread seen asleep before it is still asleep at the same
    /// place with the same context-switch count, so it was not scheduled meanwhile. Allocates
    /// nothing.
    pub(super) fn check_after(&mut self) -> Result<(), Unproven> {
        for thread in &mut self.threads {
            let Some(before) = thread.before else {
                continue;
            };
            let tid = thread.tid;
            let ran = Unproven::Ran { tid };
            // A thread that left since ran to leave.
            let place = read(&thread.syscall, &mut self.buffer, parse_syscall).ok_or(ran)?;
            let (sp, pc) = place.ok_or(ran)?;
            let (state, switches) =
                read(&thread.status, &mut self.buffer, parse_status).ok_or(ran)?;
            let now = Sighting { switches, sp, pc };
            if !asleep(state) || now != before {
                return Err(ran);
            }
        }
        Ok(())
    }
}

/// Whether `tid` blocks the stop signal only because it is still in the handler of the last
/// stop, which it parked in: running (it was released), so it takes the next signal once it
/// returns, and is stopped like any other thread.
fn returning_from_stop(tid: i32, status: &str) -> bool {
    let running = parse_status(status.as_bytes()).is_some_and(|(state, _)| !asleep(state));
    running && parked_in_last_stop(tid)
}

/// How many threads of the process but this one block the stop signal now.
pub(super) fn count_blocking() -> usize {
    let mut tasks = TaskList::new();
    if list_tasks(&mut tasks).is_err() {
        return 0;
    }
    // SAFETY: `gettid` has no preconditions.
    let me = unsafe { libc::gettid() };
    tasks
        .tids
        .iter()
        .filter(|&&tid| tid != me)
        .filter_map(|tid| std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).ok())
        .filter(|status| blocks_signal(status, stop_signal()))
        .count()
}

/// Opens `/proc/self/task/<tid>/<file>` for reading.
fn open_proc(tid: i32, file: &str) -> Result<Fd, std::io::Error> {
    let path = CString::new(format!("/proc/self/task/{tid}/{file}")).expect("no NUL in the path");
    // SAFETY: `path` is NUL-terminated and lives across the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Fd(fd))
}

/// `Ok` if thread `tid` has left (it runs nothing any more), else it could not be checked.
fn gone_or_unproven(tid: i32) -> Result<(), Unproven> {
    if alive(tid) {
        return Err(Unproven::Ran { tid });
    }
    Ok(())
}

/// Whether thread `tid` of this process still exists.
fn alive(tid: i32) -> bool {
    // SAFETY: signal 0 only asks whether the thread exists.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, 0) == 0 }
}

/// Reads the whole of `file` into `buffer` and parses it; `None` if it cannot be read (the
/// thread has left). Allocates nothing.
fn read<T>(file: &Fd, buffer: &mut [u8], parse: fn(&[u8]) -> Option<T>) -> Option<T> {
    // SAFETY: `buffer` is valid for writes of its length; offset 0 makes procfs regenerate it.
    let read = unsafe { libc::pread(file.0, buffer.as_mut_ptr().cast(), buffer.len(), 0) };
    let read = usize::try_from(read).ok().filter(|&n| n > 0)?;
    parse(&buffer[..read])
}

fn asleep(state: u8) -> bool {
    matches!(state, b'S' | b'D')
}

/// Whether a thread's `status` text has `signal` in its blocked mask (`SigBlk`, hex, bit
/// `signal - 1`).
fn blocks_signal(status: &str, signal: libc::c_int) -> bool {
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("SigBlk:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    (1..=64).contains(&signal) && mask & (1u64 << (signal - 1)) != 0
}

/// The state letter and the voluntary plus involuntary context switches from a `status` file.
fn parse_status(text: &[u8]) -> Option<(u8, u64)> {
    let field = |name: &[u8]| {
        text.split(|&b| b == b'\n')
            .find_map(|line| line.strip_prefix(name))
            .map(<[u8]>::trim_ascii)
    };
    let state = *field(b"State:")?.first()?;
    let count = |name: &[u8]| {
        field(name)?.iter().try_fold(0u64, |n, &d| {
            d.is_ascii_digit()
                .then(|| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))?
        })
    };
    let switches =
        count(b"voluntary_ctxt_switches:")?.checked_add(count(b"nonvoluntary_ctxt_switches:")?)?;
    Some((state, switches))
}

/// The user stack pointer and instruction from a `syscall` file (`nr args… sp pc`, or `-1 sp pc`
/// for a thread blocked outside a system call); `Some(None)` for `running`, which the kernel
/// says of a thread it could not find off its CPU and asleep.
fn parse_syscall(text: &[u8]) -> Option<Option<(usize, usize)>> {
    let text = text.trim_ascii();
    if text == b"running" {
        return Some(None);
    }
    let mut fields = text.rsplit(|&b| b == b' ');
    let pc = hex(fields.next()?)?;
    let sp = hex(fields.next()?)?;
    Some(Some((sp, pc)))
}

fn hex(field: &[u8]) -> Option<usize> {
    let digits = field.strip_prefix(b"0x")?;
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &d| {
        let digit = char::from(d).to_digit(16)?;
        n.checked_mul(16)?.checked_add(digit as usize)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_state_switches_and_blocked_signals_of_a_status_file() {
        let status = "Name:\tsnake:disk$0\nState:\tS (sleeping)\nSigBlk:\tfffffffe3ffbfaff\n\
                      voluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(parse_status(status.as_bytes()), Some((b'S', 15)));
        // Mesa's mask blocks SIGRTMIN + 5 (39) but not SIGRTMIN's reserved 32 and 33.
        assert!(blocks_signal(status, 39));
        assert!(!blocks_signal(status, 33));
        assert!(!blocks_signal("SigBlk:\t0000000000000000\n", 39));
        assert_eq!(parse_status(b"State:\tR (running)\n"), None, "no counts");
    }

    #[test]
    fn reads_the_stack_pointer_and_instruction_of_a_syscall_file() {
        let blocked = b"202 0x7f1c 0x80 0x0 0x0 0x0 0x0 0x7ffd1230 0x7f00abcd\n";
        assert_eq!(
            parse_syscall(blocked),
            Some(Some((0x7ffd_1230, 0x7f00_abcd)))
        );
        assert_eq!(
            parse_syscall(b"-1 0x7ffd1230 0x401000\n"),
            Some(Some((0x7ffd_1230, 0x40_1000)))
        );
        assert_eq!(parse_syscall(b"running\n"), Some(None));
        assert_eq!(parse_syscall(b"garbage\n"), None);
    }

    #[test]
    fn a_sleeping_thread_is_seen_asleep_and_a_spinning_one_is_not() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let (sender, receiver) = std::sync::mpsc::channel::<()>();
        let sleeper = std::thread::spawn(move || {
            // SAFETY: `gettid` has no preconditions.
            let tid = unsafe { libc::gettid() };
            let _ = receiver.recv();
            tid
        });
        let stop = Arc::new(AtomicBool::new(false));
        let spin_stop = Arc::clone(&stop);
        let spinner = std::thread::spawn(move || {
            while !spin_stop.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        let mut buffer = vec![0; READ_LEN];
        let mut tasks = TaskList::new();
        list_tasks(&mut tasks).unwrap();
        let mut seen = Vec::new();
        for &tid in &tasks.tids {
            // Other tests' threads may leave meanwhile.
            let (Ok(status), Ok(syscall)) = (open_proc(tid, "status"), open_proc(tid, "syscall"))
            else {
                continue;
            };
            let Some((state, _)) = read(&status, &mut buffer, parse_status) else {
                continue;
            };
            let Some(place) = read(&syscall, &mut buffer, parse_syscall) else {
                continue;
            };
            seen.push((asleep(state), place.is_some()));
        }
        assert!(seen.contains(&(true, true)), "the sleeper: {seen:?}");
        assert!(seen.contains(&(false, false)), "the spinner: {seen:?}");
        sender.send(()).unwrap();
        sleeper.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        spinner.join().unwrap();
    }
}
