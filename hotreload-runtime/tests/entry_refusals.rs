//! Entry redirection refuses what it cannot do safely, naming the function and the reason, and
//! writes nothing then: a function too small for the jump, a thread sitting inside the bytes to
//! be written (at that instruction, or returning there), a stop longer than allowed, merged names
//! given different code, an unknown size. The functions are written in assembly so their bytes
//! are exactly what each case needs.

// Entry redirection exists on x86-64 Linux only.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod support;

use hotreload_runtime::entry::{redirect_entries, EntryError, EntryLimits};
use support::entry::{entry, redirect, turn};

std::arch::global_asm!(
    ".text",
    // `xor eax, eax; ret`: 3 bytes, and the next function starts right after.
    ".globl entry_test_tiny",
    ".type entry_test_tiny, @function",
    ".p2align 4",
    "entry_test_tiny:",
    ".byte 0x31, 0xc0, 0xc3",
    ".size entry_test_tiny, 3",
    ".globl entry_test_after_tiny",
    ".type entry_test_after_tiny, @function",
    "entry_test_after_tiny:",
    ".byte 0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3",
    ".size entry_test_after_tiny, 6",
    // The same 3 bytes followed by `int3` padding: room for the jump.
    ".globl entry_test_padded",
    ".type entry_test_padded, @function",
    ".p2align 4",
    "entry_test_padded:",
    ".byte 0x31, 0xc0, 0xc3, 0xcc, 0xcc, 0xcc",
    ".size entry_test_padded, 3",
    // `mov eax, ecx; syscall; ret`: a thread blocked in the system call is at entry+4.
    ".globl entry_test_syscall",
    ".type entry_test_syscall, @function",
    ".p2align 4",
    "entry_test_syscall:",
    ".byte 0x89, 0xc8, 0x0f, 0x05, 0xc3",
    ".size entry_test_syscall, 5",
    // `push rax; call rsi; pop rcx; ret`: while the callee runs, entry+3 is on the stack.
    ".globl entry_test_call",
    ".type entry_test_call, @function",
    ".p2align 4",
    "entry_test_call:",
    ".byte 0x50, 0xff, 0xd6, 0x59, 0xc3",
    ".size entry_test_call, 5",
);

extern "C" {
    fn entry_test_tiny() -> u32;
    fn entry_test_after_tiny() -> u32;
    fn entry_test_padded() -> u32;
    fn entry_test_syscall(a1: usize, a2: usize, a3: usize, number: usize) -> isize;
    fn entry_test_call(argument: u64, callee: extern "C" fn(u64) -> u64) -> u64;
}

extern "C" fn nine() -> u32 {
    9
}

extern "C" fn doubled(x: u64) -> u64 {
    x * 2
}

extern "C" fn tripled(x: u64) -> u64 {
    x * 3
}

#[test]
fn a_function_smaller_than_the_jump_without_padding_is_refused() {
    let _turn = turn();
    let tiny = entry(
        "tiny",
        entry_test_tiny as *const () as usize,
        3,
        nine as *const () as usize,
    );
    let error = redirect(&[tiny]).unwrap_err();
    assert!(
        matches!(&error, EntryError::NoRoom { name, size: 3 } if name == "tiny"),
        "{error}"
    );
    assert!(error.to_string().contains("5-byte jump"), "{error}");
    // SAFETY: plain functions without arguments.
    unsafe {
        assert_eq!(entry_test_tiny(), 0, "nothing was written");
        assert_eq!(
            entry_test_after_tiny(),
            42,
            "the next function is untouched"
        );
    }
}

#[test]
fn a_small_function_followed_by_padding_is_redirected_and_restored() {
    let _turn = turn();
    let padded = entry(
        "padded",
        entry_test_padded as *const () as usize,
        3,
        nine as *const () as usize,
    );
    redirect(&[padded]).expect("int3 padding leaves room for the jump");
    // SAFETY: a plain function without arguments.
    assert_eq!(unsafe { entry_test_padded() }, 9);
    redirect(&[]).unwrap();
    // SAFETY: as above.
    assert_eq!(
        unsafe { entry_test_padded() },
        0,
        "the original bytes are back"
    );
}

#[test]
fn a_thread_blocked_inside_the_first_bytes_is_waited_for_then_refused() {
    let _turn = turn();
    let (mut writer, reader) = UnixStream::pair().unwrap();
    let fd = reader.as_raw_fd() as usize;
    let blocked = std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        // SAFETY: read(2) of one byte into `byte` from a socket this thread owns.
        let read = unsafe { entry_test_syscall(fd, byte.as_mut_ptr() as usize, 1, 0) };
        drop(reader);
        read
    });
    std::thread::sleep(Duration::from_millis(200));
    let syscall = entry(
        "entry_test_syscall",
        entry_test_syscall as *const () as usize,
        5,
        nine as *const () as usize,
    );
    let error = redirect(std::slice::from_ref(&syscall)).unwrap_err();
    match &error {
        EntryError::ThreadInside { name, tries, .. } => {
            assert_eq!(name, "entry_test_syscall");
            assert!(*tries > 1, "it was retried: {error}");
        }
        other => panic!("expected a thread inside the bytes, got: {other}"),
    }
    writer.write_all(b"x").unwrap();
    assert_eq!(
        blocked.join().unwrap(),
        1,
        "the blocked call finished normally"
    );
    assert!(hotreload_runtime::entry::redirected_entries().is_empty());
}

/// Data, not code: no entry to redirect.
static NOT_CODE: [u8; 8] = [0; 8];

static CALLEE_MAY_RETURN: AtomicBool = AtomicBool::new(false);

extern "C" fn wait_then_double(x: u64) -> u64 {
    while !CALLEE_MAY_RETURN.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    x * 2
}

#[test]
fn a_return_address_inside_the_first_bytes_is_found_on_the_stack() {
    let _turn = turn();
    // SAFETY: `entry_test_call` calls its second argument with its first.
    let waiting = std::thread::spawn(|| unsafe { entry_test_call(21, wait_then_double) });
    std::thread::sleep(Duration::from_millis(200));
    let call = entry(
        "entry_test_call",
        entry_test_call as *const () as usize,
        5,
        tripled as *const () as usize,
    );
    let error = redirect(std::slice::from_ref(&call)).unwrap_err();
    assert!(
        matches!(&error, EntryError::ThreadInside { name, .. } if name == "entry_test_call"),
        "{error}"
    );
    CALLEE_MAY_RETURN.store(true, Ordering::SeqCst);
    assert_eq!(
        waiting.join().unwrap(),
        42,
        "the running call finished on the old code"
    );

    redirect(&[call]).expect("with no thread inside, the jump is written");
    // SAFETY: as above; the target takes the same argument.
    assert_eq!(
        unsafe { entry_test_call(21, doubled) },
        63,
        "later calls run the new code"
    );
    redirect(&[]).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { entry_test_call(21, doubled) }, 42);
}

#[test]
fn a_stop_longer_than_the_limit_writes_nothing() {
    let _turn = turn();
    let stop = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = (0..4)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // SAFETY: a plain function without arguments.
                    std::hint::black_box(unsafe { entry_test_padded() });
                }
            })
        })
        .collect();
    let padded = entry(
        "padded",
        entry_test_padded as *const () as usize,
        3,
        nine as *const () as usize,
    );
    let no_pause = EntryLimits {
        max_pause: Duration::ZERO,
        retry_for: Duration::ZERO,
    };
    // SAFETY: as in `redirect`.
    let error = unsafe { redirect_entries(&[padded], &no_pause) }.unwrap_err();
    stop.store(true, Ordering::Relaxed);
    for thread in busy {
        thread.join().unwrap();
    }
    assert!(
        matches!(error, EntryError::PauseTooLong { limit_us: 0, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("HOTRELOAD_MAX_PAUSE_MS"),
        "{error}"
    );
    // SAFETY: as above.
    assert_eq!(unsafe { entry_test_padded() }, 0, "nothing was written");
}

#[test]
fn merged_names_with_different_code_and_unknown_sizes_are_refused() {
    let _turn = turn();
    let at = entry_test_padded as *const () as usize;
    let error = redirect(&[
        entry("padded", at, 3, nine as *const () as usize),
        entry("padded_alias", at, 3, entry_test_tiny as *const () as usize),
    ])
    .unwrap_err();
    assert!(
        matches!(error, EntryError::ConflictingTargets { .. }),
        "{error}"
    );
    let merged = redirect(&[
        entry("padded", at, 3, nine as *const () as usize),
        entry("padded_alias", at, 3, nine as *const () as usize),
    ])
    .expect("names of one function with one target are written once");
    assert_eq!((merged.written, merged.redirected), (1, 1));
    redirect(&[]).unwrap();

    let error = redirect(&[entry("padded", at, 0, nine as *const () as usize)]).unwrap_err();
    assert!(matches!(error, EntryError::SizeUnknown { .. }), "{error}");
    let outside = redirect(&[entry("data", &NOT_CODE as *const _ as usize, 8, 0)]);
    assert!(
        matches!(outside, Err(EntryError::NotInExecutable { .. })),
        "{outside:?}"
    );
}
