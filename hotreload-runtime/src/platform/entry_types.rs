//! What entry redirection takes, reports and refuses: the same on every platform, so the patch
//! code and the public API compile everywhere (where it is not supported it refuses).

use std::time::Duration;

/// One function of the executable whose entry jumps to `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryTarget {
    /// The function's name, for messages.
    pub name: String,
    /// The address of its first instruction.
    pub entry: usize,
    /// Its size in bytes as the symbol table gives it (0: unknown, refused).
    pub size: usize,
    /// The address every later call jumps to.
    pub target: usize,
}

/// How long redirecting may stop the process's threads, and how long it may keep retrying while
/// a thread sits inside bytes to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLimits {
    /// The longest stop, from the first signal to the release; a stop that takes longer writes
    /// nothing and is refused.
    pub max_pause: Duration,
    /// How long to keep retrying while a stopped thread is inside entry+1..entry+4 of a function
    /// to be written.
    pub retry_for: Duration,
}

/// The environment variable bounding the pause of a patch's entry redirects, in milliseconds.
pub const MAX_PAUSE_ENV: &str = "HOTRELOAD_MAX_PAUSE_MS";
/// The bound when [`MAX_PAUSE_ENV`] is not set.
pub const DEFAULT_MAX_PAUSE: Duration = Duration::from_millis(100);

impl EntryLimits {
    /// [`MAX_PAUSE_ENV`] (or [`DEFAULT_MAX_PAUSE`]), and half a second of retries.
    pub fn from_env() -> EntryLimits {
        let max_pause = std::env::var(MAX_PAUSE_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_MAX_PAUSE, Duration::from_millis);
        EntryLimits {
            max_pause,
            retry_for: Duration::from_millis(500),
        }
    }
}

/// What one [`redirect_entries`](crate::entry::redirect_entries) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryOutcome {
    /// Functions redirected after it.
    pub redirected: usize,
    /// Entries written with a jump.
    pub written: usize,
    /// Entries given back their original bytes.
    pub restored: usize,
    /// Redirected functions whose slot now holds another target (no stop needed).
    pub retargeted: usize,
    /// How long the other threads were stopped, from the first signal to the release, if they
    /// were (only writing or restoring entry bytes needs it).
    pub pause: Option<Duration>,
    /// The other threads: stopped, or (those that block the stop signal) checked asleep.
    pub threads: usize,
    /// Of `threads`, those that block the stop signal and were checked asleep in the kernel
    /// throughout the write instead of stopped.
    pub foreign_threads: usize,
    /// Stops given up because a thread was inside bytes to be written, before the one that
    /// succeeded.
    pub retries: u32,
}

/// Why entries could not be redirected or restored. Nothing was written then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// Not supported here.
    #[error("entry redirection is only supported on x86-64 Linux, not {os}-{arch}")]
    Unsupported {
        /// The operating system.
        os: &'static str,
        /// The architecture.
        arch: &'static str,
    },
    /// The address is not in the executable's code.
    #[error("`{name}` at {address:#x} is not in the executable's code; only functions of the executable can be redirected")]
    NotInExecutable {
        /// The function.
        name: String,
        /// Its address.
        address: usize,
    },
    /// The new code is not in the patch library's code.
    #[error("the new code of `{name}` (offset {offset:#x}) is not in the patch library's code; the patch is corrupt, rebuild it")]
    TargetOutsideLibrary {
        /// The function.
        name: String,
        /// The offset the manifest gives.
        offset: u64,
    },
    /// The function is a `#[hot]` function's code, which its slot switches.
    #[error("`{name}` is the code of the hot function `{key}`, which its slot switches at a safe point; a patch never redirects its entry (the patch is corrupt, rebuild it)")]
    HotFunction {
        /// The function as the manifest names it.
        name: String,
        /// The hot function's key.
        key: String,
    },
    /// The size is not known, so the room for the jump cannot be checked.
    #[error("the size of `{name}` is unknown, so whether its 5-byte jump fits cannot be checked; the patch must give every function's size")]
    SizeUnknown {
        /// The function.
        name: String,
    },
    /// The function is shorter than the jump and no padding follows it.
    #[error("`{name}` is {size} bytes long and followed by no padding: the 5-byte jump to its new code does not fit; restart the program to run the change")]
    NoRoom {
        /// The function.
        name: String,
        /// Its size.
        size: usize,
    },
    /// Its first bytes are not the executable's.
    #[error("the first bytes of `{name}` ({found}) are not the executable's ({expected}): something else (a debugger's breakpoint, another patcher) changed them; remove it and try again")]
    Modified {
        /// The function.
        name: String,
        /// The bytes in memory, hex.
        found: String,
        /// The bytes in the file, hex.
        expected: String,
    },
    /// Two names share one entry (merged functions) but were given different targets.
    #[error("`{name}` and `{other}` are one function (same address) but were given different new code; they must be redirected together")]
    ConflictingTargets {
        /// One name.
        name: String,
        /// The other.
        other: String,
    },
    /// A thread stayed inside bytes to be written.
    #[error("a thread ({thread}, tid {tid}) stayed inside the first 5 bytes of `{name}` for {waited_ms} ms ({tries} tries): the jump cannot be written safely; try again")]
    ThreadInside {
        /// The function.
        name: String,
        /// The thread's id.
        tid: i32,
        /// Its name.
        thread: String,
        /// Stops tried.
        tries: u32,
        /// How long it was retried, in milliseconds.
        waited_ms: u64,
    },
    /// A thread kept starting to block the stop signal after the threads were classified.
    #[error("thread {thread} (tid {tid}) began blocking the stop signal after the process's threads were checked, on every attempt for {waited_ms} ms (a library starting threads, as Mesa does on its first frames); nothing was written; try again once the app has started its threads")]
    BeganBlocking {
        /// The thread's id.
        tid: i32,
        /// Its name.
        thread: String,
        /// How long the attempts took, in milliseconds.
        waited_ms: u64,
    },
    /// A thread that blocks the stop signal could not be proven asleep throughout the write.
    #[error("thread {thread} (tid {tid}) blocks the stop signal, so it cannot be stopped, and it was running during {} ({tries} tries in {waited_ms} ms): the jump is written only while such a thread sleeps in a system call; nothing was written; try again when it is idle", if *every_time { "every attempt" } else { "the last attempt" })]
    ForeignThreadRunning {
        /// The thread's id.
        tid: i32,
        /// Its name.
        thread: String,
        /// Whether every attempt failed on such a thread running (rather than some on a thread
        /// inside the bytes).
        every_time: bool,
        /// Attempts made.
        tries: u32,
        /// How long it was retried, in milliseconds.
        waited_ms: u64,
    },
    /// Stopping the threads took longer than the limit.
    #[error("stopping the process's {threads} other threads took longer than the {limit_us} µs allowed{}; nothing was written; raise HOTRELOAD_MAX_PAUSE_MS to allow a longer pause", not_stopped.as_ref().map(|t| format!(" (thread {t} had not stopped)")).unwrap_or_default())]
    PauseTooLong {
        /// The limit, in microseconds.
        limit_us: u64,
        /// Threads listed.
        threads: usize,
        /// A thread that had not stopped, with its id (`None`: all had, but too late).
        not_stopped: Option<String>,
    },
    /// More threads than one stop handles.
    #[error("the process has {0} threads, more than the 4096 one stop handles")]
    TooManyThreads(usize),
    /// No memory for the jump's slot within ±2 GiB of the function.
    #[error("no memory could be mapped within 2 GiB of `{name}` for its jump")]
    NoSlotSpace {
        /// The function.
        name: String,
    },
    /// A system call failed.
    #[error("{what} failed: {error}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The error.
        error: String,
    },
}
