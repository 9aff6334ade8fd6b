//! Entry redirection in a process with threads that block every signal, as Mesa's shader-cache
//! queue, llvmpipe workers and GPU drivers' queue threads do: such a thread cannot be stopped, so
//! the write goes ahead only while it sleeps in the kernel, outside the bytes written, without
//! waking, and is refused (nothing changed) while it runs.

// Entry redirection exists on x86-64 Linux only.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

mod support;

use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hotreload_runtime::entry::EntryError;
use support::entry::{block_every_signal, entry, price, price_redirect, redirect, turn};

std::arch::global_asm!(
    ".text",
    // `mov eax, ecx; syscall; ret`: a thread blocked in the system call is at entry+4.
    ".globl foreign_test_syscall",
    ".type foreign_test_syscall, @function",
    ".p2align 4",
    "foreign_test_syscall:",
    ".byte 0x89, 0xc8, 0x0f, 0x05, 0xc3",
    ".size foreign_test_syscall, 5",
    // `push rax; call rsi; pop rcx; ret`: while the callee runs, entry+3 is on the stack.
    ".globl foreign_test_call",
    ".type foreign_test_call, @function",
    ".p2align 4",
    "foreign_test_call:",
    ".byte 0x50, 0xff, 0xd6, 0x59, 0xc3",
    ".size foreign_test_call, 5",
    // `mov eax, 7; ret`: one 5-byte first instruction, so no thread can ever be inside
    // entry+1..=entry+4 and a write that races a running thread is still exact.
    ".globl foreign_test_seven",
    ".type foreign_test_seven, @function",
    ".p2align 4",
    "foreign_test_seven:",
    ".byte 0xb8, 0x07, 0x00, 0x00, 0x00, 0xc3",
    ".size foreign_test_seven, 6",
);

extern "C" {
    fn foreign_test_syscall(a1: usize, a2: usize, a3: usize, number: usize) -> isize;
    fn foreign_test_call(argument: u64, callee: extern "C" fn(u64) -> u64) -> u64;
    fn foreign_test_seven() -> u32;
}

extern "C" fn nine() -> u32 {
    9
}

extern "C" fn tripled(x: u64) -> u64 {
    x * 3
}

/// A thread that blocks every signal and computes `price` of each number it receives, sleeping
/// on a futex (a channel) in between.
fn futex_sleeper() -> (
    mpsc::Sender<u64>,
    mpsc::Receiver<u64>,
    std::thread::JoinHandle<()>,
) {
    let (ask, asked) = mpsc::channel::<u64>();
    let (answer, answers) = mpsc::channel::<u64>();
    let thread = std::thread::Builder::new()
        .name("futex-sleeper".into())
        .spawn(move || {
            block_every_signal();
            for x in asked {
                answer.send(price(x)).unwrap();
            }
        })
        .unwrap();
    (ask, answers, thread)
}

#[test]
fn sleeping_threads_that_block_every_signal_are_checked_not_stopped_and_run_the_new_code_when_woken(
) {
    let _turn = turn();
    let (ask, answers, futex_thread) = futex_sleeper();
    let nanosleeper = std::thread::Builder::new()
        .name("nanosleeper".into())
        .spawn(|| {
            block_every_signal();
            std::thread::sleep(Duration::from_millis(1500));
            price(10)
        })
        .unwrap();
    let (mut writer, mut reader) = UnixStream::pair().unwrap();
    let reading = std::thread::Builder::new()
        .name("reader".into())
        .spawn(move || {
            block_every_signal();
            let mut byte = [0u8; 1];
            reader.read_exact(&mut byte).unwrap();
            price(u64::from(byte[0]))
        })
        .unwrap();
    ask.send(1).unwrap();
    assert_eq!(answers.recv().unwrap(), 4, "the old code before");
    std::thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    let outcome = redirect(&[price_redirect()]).expect("sleeping threads do not stop a redirect");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "written while the nanosleeper still sleeps"
    );
    assert_eq!(outcome.written, 1);
    assert!(
        outcome.foreign_threads >= 3 && outcome.threads >= outcome.foreign_threads,
        "the three threads were checked asleep: {outcome:?}"
    );
    ask.send(1).unwrap();
    assert_eq!(
        answers.recv().unwrap(),
        5,
        "woken from a futex: the new code"
    );
    writer.write_all(&[2]).unwrap();
    assert_eq!(reading.join().unwrap(), 8, "woken from read: the new code");
    assert_eq!(
        nanosleeper.join().unwrap(),
        32,
        "after its sleep: the new code"
    );

    let rollback = redirect(&[]).expect("the futex sleeper does not stop a rollback");
    assert_eq!((rollback.restored, rollback.foreign_threads), (1, 1));
    ask.send(1).unwrap();
    assert_eq!(answers.recv().unwrap(), 4, "rolled back: the old code");
    drop(ask);
    futex_thread.join().unwrap();
}

#[test]
fn a_thread_that_blocks_every_signal_and_never_sleeps_is_refused_and_keeps_the_old_code() {
    let _turn = turn();
    let seven = foreign_test_seven as *const () as usize;
    // SAFETY: the function's first bytes are mapped code of this executable.
    let bytes_at = || unsafe { std::ptr::read_volatile(seven as *const [u8; 8]) };
    let original = bytes_at();
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let spinner = {
        let (stop, calls, wrong) = (stop.clone(), calls.clone(), wrong.clone());
        std::thread::Builder::new()
            .name("spinner".into())
            .spawn(move || {
                block_every_signal();
                while !stop.load(Ordering::Relaxed) {
                    // SAFETY: a plain function without arguments.
                    if unsafe { foreign_test_seven() } != 7 {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            })
            .unwrap()
    };
    while calls.load(Ordering::Relaxed) < 1000 {
        std::thread::yield_now();
    }
    let started = Instant::now();
    let error = redirect(&[entry("seven", seven, 6, nine as *const () as usize)]).unwrap_err();
    let took = started.elapsed();
    let before = calls.load(Ordering::Relaxed);
    while calls.load(Ordering::Relaxed) < before + 1000 {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    spinner.join().unwrap();
    match &error {
        EntryError::ForeignThreadRunning {
            thread, every_time, ..
        } => {
            assert_eq!(thread, "spinner");
            assert!(*every_time, "{error}");
        }
        other => panic!("expected the spinning thread named, got: {other}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("spinner") && message.contains("blocks the stop signal"),
        "{message}"
    );
    assert!(
        took < Duration::from_secs(2),
        "refused within the limit: {took:?}"
    );
    assert_eq!(bytes_at(), original, "the bytes are exactly the original");
    assert_eq!(
        wrong.load(Ordering::Relaxed),
        0,
        "it kept running the old code"
    );
    assert!(hotreload_runtime::entry::redirected_entries().is_empty());
}

/// Reads one byte from the socket `fd`, through `foreign_test_syscall`: the thread sleeps at
/// entry+4 of it.
fn read_through_asm(fd: usize) -> isize {
    let mut byte = [0u8; 1];
    // SAFETY: read(2) of one byte into `byte` from a socket this thread owns.
    unsafe { foreign_test_syscall(fd, byte.as_mut_ptr() as usize, 1, 0) }
}

#[test]
fn a_sleeping_thread_that_blocks_every_signal_inside_the_first_bytes_is_found() {
    let _turn = turn();
    let (mut writer, reader) = UnixStream::pair().unwrap();
    let fd = reader.as_raw_fd() as usize;
    let blocked = std::thread::Builder::new()
        .name("asleep-inside".into())
        .spawn(move || {
            block_every_signal();
            let read = read_through_asm(fd);
            drop(reader);
            read
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let syscall = entry(
        "foreign_test_syscall",
        foreign_test_syscall as *const () as usize,
        5,
        nine as *const () as usize,
    );
    let error = redirect(std::slice::from_ref(&syscall)).unwrap_err();
    assert!(
        matches!(&error, EntryError::ThreadInside { name, thread, .. }
            if name == "foreign_test_syscall" && thread == "asleep-inside"),
        "its instruction is at entry+4: {error}"
    );
    writer.write_all(b"x").unwrap();
    assert_eq!(blocked.join().unwrap(), 1, "the blocked call finished");
    assert!(hotreload_runtime::entry::redirected_entries().is_empty());
}

/// The socket `returns_after_a_byte` reads from.
static CALLEE_SOCKET: AtomicU64 = AtomicU64::new(0);

extern "C" fn returns_after_a_byte(x: u64) -> u64 {
    let mut byte = [0u8; 1];
    let fd = CALLEE_SOCKET.load(Ordering::SeqCst) as libc::c_int;
    // SAFETY: read(2) of one byte into `byte`.
    let read = unsafe { libc::read(fd, byte.as_mut_ptr().cast(), 1) };
    assert_eq!(read, 1);
    x * 2
}

#[test]
fn a_sleeping_thread_that_blocks_every_signal_returning_inside_the_first_bytes_is_found() {
    let _turn = turn();
    let (mut writer, reader) = UnixStream::pair().unwrap();
    CALLEE_SOCKET.store(reader.as_raw_fd() as u64, Ordering::SeqCst);
    let waiting = std::thread::Builder::new()
        .name("returns-inside".into())
        .spawn(|| {
            block_every_signal();
            // SAFETY: `foreign_test_call` calls its second argument with its first.
            unsafe { foreign_test_call(21, returns_after_a_byte) }
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let call = entry(
        "foreign_test_call",
        foreign_test_call as *const () as usize,
        5,
        tripled as *const () as usize,
    );
    let error = redirect(std::slice::from_ref(&call)).unwrap_err();
    assert!(
        matches!(&error, EntryError::ThreadInside { name, thread, .. }
            if name == "foreign_test_call" && thread == "returns-inside"),
        "entry+3 is on its stack: {error}"
    );
    writer.write_all(b"x").unwrap();
    assert_eq!(
        waiting.join().unwrap(),
        42,
        "the running call finished on the old code"
    );
    drop(reader);
}

#[test]
fn writes_and_restores_race_a_thread_that_blocks_every_signal_and_wakes_every_200_microseconds() {
    let _turn = turn();
    let seven = foreign_test_seven as *const () as usize;
    // SAFETY: the function's first bytes are mapped code of this executable.
    let bytes_at = || unsafe { std::ptr::read_volatile(seven as *const [u8; 8]) };
    let original = bytes_at();
    let stop = Arc::new(AtomicBool::new(false));
    let wrong = Arc::new(AtomicU64::new(0));
    let napper = {
        let (stop, wrong) = (stop.clone(), wrong.clone());
        std::thread::Builder::new()
            .name("napper".into())
            .spawn(move || {
                block_every_signal();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_micros(200));
                    // SAFETY: a plain function without arguments.
                    let got = unsafe { foreign_test_seven() };
                    if got != 7 && got != 9 {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .unwrap()
    };
    let redirected = entry("seven", seven, 6, nine as *const () as usize);
    let mut given_up = 0;
    let mut refused = 0;
    let started = Instant::now();
    for _ in 0..100 {
        for wanted in [std::slice::from_ref(&redirected), &[]] {
            match redirect(wanted) {
                Ok(outcome) => given_up += outcome.retries,
                Err(EntryError::ForeignThreadRunning { .. }) => refused += 1,
                Err(other) => panic!("{other}"),
            }
        }
    }
    if !hotreload_runtime::entry::redirected_entries().is_empty() {
        redirect(&[]).expect("restored at last");
    }
    stop.store(true, Ordering::Relaxed);
    napper.join().unwrap();
    assert_eq!(
        wrong.load(Ordering::Relaxed),
        0,
        "every call ran the old or the new code"
    );
    assert_eq!(bytes_at(), original, "the executable's bytes are back");
    assert!(
        given_up + refused > 0,
        "some attempts found the napper awake and were given up"
    );
    eprintln!(
        "attempts given up: {given_up}; refusals: {refused}; {:?}",
        started.elapsed()
    );
}

#[test]
fn workers_that_block_every_signal_and_render_a_frame_now_and_then_are_met_asleep_between_frames() {
    let _turn = turn();
    let stop = Arc::new(AtomicBool::new(false));
    let wrong = Arc::new(AtomicU64::new(0));
    // Like llvmpipe's two workers: every 10 ms a frame, 2 ms of work calling the function, then
    // asleep until the next one. The function's first instruction is 5 bytes long, so a worker
    // woken by its timer just as the jump is written runs old or new code, nothing else.
    let workers: Vec<_> = (0..2)
        .map(|i| {
            let (stop, wrong) = (stop.clone(), wrong.clone());
            std::thread::Builder::new()
                .name(format!("frame-worker-{i}"))
                .spawn(move || {
                    block_every_signal();
                    while !stop.load(Ordering::Relaxed) {
                        let frame = Instant::now();
                        while frame.elapsed() < Duration::from_millis(2) {
                            // SAFETY: a plain function without arguments.
                            let got = unsafe { foreign_test_seven() };
                            if got != 7 && got != 9 {
                                wrong.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        std::thread::sleep(Duration::from_millis(8));
                    }
                })
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let seven = foreign_test_seven as *const () as usize;
    let redirected = entry("seven", seven, 6, nine as *const () as usize);
    let written = redirect(&[redirected]).expect("met between frames");
    assert_eq!(written.foreign_threads, 2, "{written:?}");
    let restored = redirect(&[]).expect("met between frames");
    assert_eq!(restored.restored, 1);
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(
        wrong.load(Ordering::Relaxed),
        0,
        "every call ran the old or the new code"
    );
    eprintln!(
        "retries: write {}, restore {}",
        written.retries, restored.retries
    );
}
