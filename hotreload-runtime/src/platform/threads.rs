//! Where the process's threads are: each thread is interrupted by a real-time signal
//! (`SIGRTMIN + 4`) whose handler records the instruction it was at. Used only while answering
//! `status` and `rollback`, never on the call path; a system call the signal interrupts is
//! restarted (`SA_RESTART`) or returns `EINTR` as for any signal.

use std::ffi::{c_void, CStr};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// The most threads one sample records.
const SLOTS: usize = 1024;

struct Slot {
    tid: AtomicI32,
    address: AtomicUsize,
}

static SAMPLES: [Slot; SLOTS] = [const {
    Slot {
        tid: AtomicI32::new(0),
        address: AtomicUsize::new(0),
    }
}; SLOTS];
static NEXT: AtomicUsize = AtomicUsize::new(0);
/// One sample at a time.
static SAMPLING: Mutex<()> = Mutex::new(());

/// The signal that asks a thread where it is.
fn sample_signal() -> libc::c_int {
    libc::SIGRTMIN() + 4
}

/// A thread of this process and the instruction it was at.
#[derive(Debug, Clone)]
pub(crate) struct ThreadAt {
    pub(crate) tid: i32,
    pub(crate) address: usize,
}

/// The instruction every other thread of the process is at now.
pub(crate) fn sample_threads() -> Vec<ThreadAt> {
    let _one_at_a_time = crate::sync::lock(&SAMPLING);
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: an all-zero `sigaction` is valid (empty mask); the handler only does atomic
        // stores and `gettid`, which are async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sample as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
            libc::sigaction(sample_signal(), &action, std::ptr::null_mut());
        }
    });
    for slot in &SAMPLES {
        slot.tid.store(0, Ordering::Relaxed);
    }
    NEXT.store(0, Ordering::SeqCst);
    // SAFETY: `getpid` and `gettid` have no preconditions.
    let (pid, me) = unsafe { (libc::getpid(), libc::gettid()) };
    let mut sent = 0;
    for tid in thread_ids().into_iter().filter(|&t| t != me).take(SLOTS) {
        // SAFETY: `tgkill` to a thread of this process, with a signal whose handler is installed.
        if unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, sample_signal()) } == 0 {
            sent += 1;
        }
    }
    let until = Instant::now() + Duration::from_millis(100);
    while recorded(sent) < sent && Instant::now() < until {
        std::thread::sleep(Duration::from_micros(200));
    }
    SAMPLES
        .iter()
        .take(NEXT.load(Ordering::SeqCst).min(SLOTS))
        .filter_map(|slot| {
            let tid = slot.tid.load(Ordering::Acquire);
            (tid != 0).then(|| ThreadAt {
                tid,
                address: slot.address.load(Ordering::Relaxed),
            })
        })
        .collect()
}

fn recorded(sent: usize) -> usize {
    SAMPLES[..sent.min(SLOTS)]
        .iter()
        .filter(|slot| slot.tid.load(Ordering::Acquire) != 0)
        .count()
}

extern "C" fn on_sample(_signal: libc::c_int, _info: *mut libc::siginfo_t, context: *mut c_void) {
    if context.is_null() {
        return;
    }
    // SAFETY: for an `SA_SIGINFO` handler the kernel passes the interrupted `ucontext_t`.
    let address = unsafe {
        (*context.cast::<libc::ucontext_t>()).uc_mcontext.gregs[libc::REG_RIP as usize] as usize
    };
    // SAFETY: `gettid` is async-signal-safe.
    let tid = unsafe { libc::gettid() };
    let index = NEXT.fetch_add(1, Ordering::SeqCst);
    if let Some(slot) = SAMPLES.get(index) {
        slot.address.store(address, Ordering::Relaxed);
        slot.tid.store(tid, Ordering::Release);
    }
}

fn thread_ids() -> Vec<i32> {
    std::fs::read_dir("/proc/self/task")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A thread's name, as `/proc` gives it.
pub(crate) fn thread_name(tid: i32) -> String {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}

/// The name of the dynamic symbol `address` lies in, demangled as far as the legacy scheme goes.
pub(crate) fn symbol_at(address: usize) -> Option<String> {
    // SAFETY: an all-zero `Dl_info` is valid; `dladdr` only writes it.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `dladdr` accepts any address.
    if unsafe { libc::dladdr(address as *const c_void, &mut info) } == 0 || info.dli_sname.is_null()
    {
        return None;
    }
    // SAFETY: a non-null `dli_sname` is a NUL-terminated string owned by the loader.
    let name = unsafe { CStr::from_ptr(info.dli_sname) }.to_string_lossy();
    Some(demangle(&name))
}

/// `_ZN7gateway6handle17h0123456789abcdefE` → `gateway::handle` (the hash dropped, and a hot
/// function's `__hot_original_..` inner name).
fn demangle(symbol: &str) -> String {
    let Some(mut rest) = symbol.strip_prefix("_ZN") else {
        return symbol.to_owned();
    };
    let mut parts = Vec::new();
    while let Some(len_end) = rest.find(|c: char| !c.is_ascii_digit()) {
        let Ok(len) = rest[..len_end].parse::<usize>() else {
            break;
        };
        let Some(part) = rest.get(len_end..len_end + len) else {
            break;
        };
        parts.push(part);
        rest = &rest[len_end + len..];
    }
    if parts
        .last()
        .is_some_and(|p| p.len() == 17 && p.starts_with('h'))
    {
        parts.pop();
    }
    // A `#[hot]` function's body is its `__hot_original_<fingerprint>`: name the function.
    if parts
        .last()
        .is_some_and(|p| p.starts_with("__hot_original_"))
    {
        parts.pop();
    }
    if parts.is_empty() {
        return symbol.to_owned();
    }
    parts.join("::")
}

#[cfg(test)]
mod tests {
    #[test]
    fn demangles_legacy_names_without_hash_or_hot_original() {
        assert_eq!(
            super::demangle(
                "_ZN7gateway6handle31__hot_original_d9bec2f67eef185c17h0123456789abcdefE"
            ),
            "gateway::handle"
        );
        assert_eq!(
            super::demangle("_ZN4core3fmt5write17h0123456789abcdefE"),
            "core::fmt::write"
        );
        assert_eq!(super::demangle("memcpy"), "memcpy");
    }
}
