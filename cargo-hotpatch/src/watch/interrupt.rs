//! Ctrl-C (or SIGTERM, SIGHUP) stops `watch` and its app: the loop notices between saves and
//! stops the app as it returns; if it is busy (a build), a watchdog stops the app itself and
//! exits, so the tool never outlives the request by more than a couple of seconds.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Set by the signal handler.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The running app's pid, 0 when none: what the watchdog stops.
static APP_PID: AtomicI32 = AtomicI32::new(0);

/// How long the loop has to notice before the watchdog stops the app and exits.
const GRACE: Duration = Duration::from_millis(1500);
/// How long the app has to exit on SIGTERM before it is killed.
pub const APP_EXIT: Duration = Duration::from_millis(1500);

/// The exit code of a process stopped by SIGINT, as shells report it.
pub const INTERRUPTED_EXIT: i32 = 130;

extern "C" fn on_signal(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs the handlers and starts the watchdog.
pub fn install() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
        // `sigaction` is zeroed then filled in as the call expects.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
    let _ = std::thread::Builder::new()
        .name("watch-interrupt".into())
        .spawn(watchdog);
}

/// Whether watch was asked to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Remembers the running app's pid (0: none).
pub fn set_app(pid: u32) {
    APP_PID.store(pid as i32, Ordering::SeqCst);
}

/// Waits for an interruption; if the loop has not stopped within [`GRACE`], stops the app and
/// exits.
fn watchdog() {
    while !interrupted() {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(GRACE);
    let pid = APP_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: signalling a pid this tool started has no memory effects.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + APP_EXIT;
        // SAFETY: reaping our own child without blocking; the tool exits right after, so no
        // `Child` handle of it is waited on again.
        while Instant::now() < deadline
            && unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == 0
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    std::process::exit(INTERRUPTED_EXIT);
}
