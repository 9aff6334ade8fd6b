//! Whether a thread sleeps with a signal blocked, read while other threads are stopped: a thread
//! that began blocking the stop signal after the threads were classified (one a library started
//! meanwhile) would otherwise be waited for until the pause limit.

/// Whether thread `tid` is asleep (`S`, `D`) with `signal` blocked, from its `status`: then the
/// signal stays pending and it will not run its handler. Reads on the stack, allocating nothing
/// (other threads may be stopped holding the allocator's lock); `false` when the file cannot be
/// read.
pub(super) fn asleep_blocking(tid: i32, signal: libc::c_int) -> bool {
    let mut path = [0u8; 40];
    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        path[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    push(b"/proc/self/task/");
    let mut digits = [0u8; 10];
    let mut rest = tid.unsigned_abs();
    let mut count = 0;
    loop {
        digits[count] = b'0' + (rest % 10) as u8;
        count += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    digits[..count].reverse();
    push(&digits[..count]);
    push(b"/status\0");
    // SAFETY: `path` is NUL-terminated and lives across the call.
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return false;
    }
    let mut text = [0u8; 4096];
    // SAFETY: `text` is valid for writes of its length; `fd` is open and closed once here.
    let read = unsafe {
        let read = libc::read(fd, text.as_mut_ptr().cast(), text.len());
        libc::close(fd);
        read
    };
    let Ok(read) = usize::try_from(read) else {
        return false;
    };
    sleeps_blocking(&text[..read], signal)
}

/// Whether a `status` text says asleep (`S`, `D`) with `signal` in `SigBlk`.
fn sleeps_blocking(status: &[u8], signal: libc::c_int) -> bool {
    let field = |name: &[u8]| {
        status
            .split(|&b| b == b'\n')
            .find_map(|line| line.strip_prefix(name))
            .map(<[u8]>::trim_ascii)
    };
    let asleep = field(b"State:").is_some_and(|state| matches!(state.first(), Some(b'S' | b'D')));
    let mask = field(b"SigBlk:").and_then(|hex| {
        hex.iter().try_fold(0u64, |mask, &digit| {
            let digit = u64::from(char::from(digit).to_digit(16)?);
            mask.checked_mul(16)?.checked_add(digit)
        })
    });
    let bit = u32::try_from(signal - 1).ok().filter(|&bit| bit < 64);
    asleep && matches!((mask, bit), (Some(mask), Some(bit)) if mask & (1 << bit) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleeping_thread_with_the_signal_blocked_is_told_apart() {
        let status = |state: &str, mask: &str| {
            format!("Name:\tsnake:disk$0\nState:\t{state}\nSigBlk:\t{mask}\nSigIgn:\t0\n")
        };
        let mesa = "fffffffe3ffbfaff";
        assert!(sleeps_blocking(status("S (sleeping)", mesa).as_bytes(), 39));
        assert!(sleeps_blocking(
            status("D (disk sleep)", mesa).as_bytes(),
            39
        ));
        assert!(!sleeps_blocking(status("R (running)", mesa).as_bytes(), 39));
        assert!(!sleeps_blocking(
            status("S (sleeping)", "0000000000000000").as_bytes(),
            39
        ));
        assert!(!sleeps_blocking(b"State:\tS (sleeping)\n", 39));
    }

    #[test]
    fn a_real_thread_asleep_with_every_signal_blocked_is_found() {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let sleeper = std::thread::spawn(move || {
            // SAFETY: a zeroed set is filled by `sigfillset`; masks only this thread's signals.
            unsafe {
                let mut all: libc::sigset_t = std::mem::zeroed();
                libc::sigfillset(&mut all);
                libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
                tid_tx.send(libc::gettid()).unwrap();
            }
            stop_rx.recv().unwrap();
        });
        let tid = tid_rx.recv().unwrap();
        let signal = libc::SIGRTMIN() + 5;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !asleep_blocking(tid, signal) {
            assert!(std::time::Instant::now() < deadline, "never seen asleep");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // SAFETY: `gettid` has no preconditions.
        assert!(
            !asleep_blocking(unsafe { libc::gettid() }, signal),
            "this thread runs"
        );
        stop_tx.send(()).unwrap();
        sleeper.join().unwrap();
    }
}
