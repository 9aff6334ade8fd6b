//! Processes the tests start: their output read on threads of their own, their parents and
//! children in `/proc`, and how they are ended.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{hello, Fixture, NEW_VERSION};

/// The writing end of a pipe whose reader is already gone, for a child's stdout: every write
/// the child makes fails with a broken pipe (`cmd | head -0`, with `head` gone before `cmd`
/// writes anything).
pub fn pipe_without_reader() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe2` writes.
    let made = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(made, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: `pipe2` just opened both descriptors, and nothing else owns them.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    Stdio::from(writer)
}

/// Everything `output` prints, collected on a thread of its own.
pub fn collect_output(mut output: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let collected = Arc::clone(&text);
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = output.read(&mut buffer) {
            if n == 0 {
                break;
            }
            collected
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    });
    text
}

/// The lines `output` prints, read on a thread of their own.
pub fn read_lines(output: impl Read + Send + 'static) -> Receiver<String> {
    forward_lines(output, |line| line)
}

/// The lines `output` prints, each with when it was read, read on a thread of their own.
pub fn read_timed_lines(output: impl Read + Send + 'static) -> Receiver<(Instant, String)> {
    forward_lines(output, |line| (Instant::now(), line))
}

fn forward_lines<T: Send + 'static>(
    output: impl Read + Send + 'static,
    stamp: fn(String) -> T,
) -> Receiver<T> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            if sender.send(stamp(line)).is_err() {
                break;
            }
        }
    });
    lines
}

/// The last `bytes` bytes of `text` or a few fewer, starting at a character.
pub fn tail(text: &str, bytes: usize) -> &str {
    let start = (text.len().saturating_sub(bytes)..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    &text[start..]
}

/// Calls `read` (which may do other work, such as draining an app's lines) until the text it
/// returns has `needle` after its first `from` bytes, for at most [`NEW_VERSION`]; returns what
/// came after `from`.
pub fn wait_for_text(mut read: impl FnMut() -> String, from: usize, needle: &str) -> String {
    let deadline = Instant::now() + NEW_VERSION;
    loop {
        let text = read();
        let new = text.get(from..).unwrap_or_default().to_owned();
        if new.contains(needle) {
            return new;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for `{needle}`; the tool printed:\n{new}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the fixture's built app directly (not through the tool) with `env`; its stdout lines.
pub fn spawn_app<V: AsRef<std::ffi::OsStr>>(
    fixture: &Fixture,
    env: &[(&str, V)],
) -> (Child, Receiver<String>) {
    let mut app = Command::new(fixture.target().join("debug").join(fixture.package()))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the app");
    let lines = read_lines(app.stdout.take().unwrap());
    (app, lines)
}

/// Kills the app a `cargo hotpatch run`/`watch` process started (its pid from `hello` on
/// `socket`, or `pid`; only if it is the tool's child), then the tool with whatever it started
/// (cargo and rustc while it builds).
pub fn stop_tool_and_app(tool: &mut Child, socket: &Path, pid: Option<u32>) {
    let pid = hello(socket).ok().or(pid);
    if let Some(pid) = pid.filter(|&pid| parent_of(pid) == Some(tool.id())) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", tool.id())])
        .stderr(Stdio::null())
        .status();
    let _ = tool.kill();
    let _ = tool.wait();
}

/// The processes whose parent is `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| parent_of(child) == Some(pid))
        .collect()
}

/// Whether a process is blocked opening a named pipe: a compiler `watch` started ahead of the
/// next save, waiting for its arguments.
pub fn waits_for_arguments(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/wchan"))
        .is_ok_and(|wchan| wchan.trim() == "wait_for_partner")
}

/// The parent pid of `pid`, from `/proc`.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}
