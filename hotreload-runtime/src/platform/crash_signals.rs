//! Recording a crash for the startup quarantine: while patches applied at start are on
//! probation, a handler for the fatal signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) writes
//! the signal's number to a *crash mark* file, then hands the signal on to whatever handled it
//! before (Rust's stack-overflow handler, or the default action), so the process dies as it would
//! have. A process stopped by SIGTERM, SIGKILL or an ordinary exit writes no mark.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

/// The signals that mean the process crashed.
const FATAL: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

/// The crash mark's path while recording, else null. Never freed once set (a handler may be
/// reading it).
static MARK_PATH: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
/// The dispositions the handlers replaced, in `FATAL`'s order.
static PREVIOUS: OnceLock<[libc::sigaction; FATAL.len()]> = OnceLock::new();

/// From now on a fatal signal writes its number to `mark` before the process dies.
pub(crate) fn record_crashes_at(mark: &Path) -> Result<(), String> {
    let path = CString::new(mark.as_os_str().as_bytes())
        .map_err(|_| format!("{} contains a NUL byte", mark.display()))?;
    MARK_PATH.store(path.into_raw(), Ordering::Release);
    if PREVIOUS.get().is_some() {
        return Ok(());
    }
    // SAFETY: an all-zero `sigaction` is a valid value of the C struct (SIG_DFL, empty mask).
    let mut previous: [libc::sigaction; FATAL.len()] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_fatal_signal as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    for (signal, previous) in FATAL.iter().zip(previous.iter_mut()) {
        // SAFETY: both pointers are to live `sigaction` values; the handler only calls
        // async-signal-safe functions.
        if unsafe { libc::sigaction(*signal, std::ptr::null(), previous) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
    }
    // The previous dispositions are stored before any handler can run and read them.
    let _ = PREVIOUS.set(previous);
    for signal in FATAL {
        // SAFETY: as above.
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
    }
    Ok(())
}

/// A fatal signal no longer writes a crash mark.
pub(crate) fn stop_recording_crashes() {
    MARK_PATH.store(std::ptr::null_mut(), Ordering::Release);
}

/// Whether a process with this id is running (a process of another user counts as running).
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

extern "C" fn on_fatal_signal(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    let path = MARK_PATH.load(Ordering::Acquire);
    if !path.is_null() {
        write_mark(path, signal);
    }
    let Some(previous) = PREVIOUS.get() else {
        return;
    };
    let Some(index) = FATAL.iter().position(|&s| s == signal) else {
        return;
    };
    // SAFETY: `sigaction` is async-signal-safe; `previous[index]` is the disposition this
    // handler replaced.
    unsafe { libc::sigaction(signal, &previous[index], std::ptr::null_mut()) };
    // A fault runs its instruction again on return and meets the previous disposition; a signal
    // sent by a process (kill, raise, abort) is sent again, to be delivered once this returns.
    // SAFETY: `info` is the kernel's siginfo for this delivery.
    if !info.is_null() && unsafe { (*info).si_code } <= 0 {
        // SAFETY: `raise` is async-signal-safe.
        unsafe { libc::raise(signal) };
    }
}

/// Writes `signal`'s number to the file at `path` with async-signal-safe calls only.
fn write_mark(path: *const libc::c_char, signal: libc::c_int) {
    let mut digits = [0u8; 12];
    let mut at = digits.len() - 1;
    digits[at] = b'\n';
    let mut rest = signal.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    // SAFETY: `path` is a NUL-terminated string that is never freed; `open`, `write` and `close`
    // are async-signal-safe.
    unsafe {
        let fd = libc::open(
            path,
            libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC,
            0o600,
        );
        if fd >= 0 {
            libc::write(fd, digits[at..].as_ptr().cast(), digits.len() - at);
            libc::close(fd);
        }
    }
}
