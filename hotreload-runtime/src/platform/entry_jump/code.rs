//! The bytes at a function's entry: what must hold before a jump is written there (room, the
//! executable's own bytes), and writing them.

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Once;

use super::EntryError;
use crate::platform::modules::{executable_segments, LoadedSegment};

/// Length of `jmp rel32`.
pub(super) const JUMP_LEN: usize = 5;

/// The executable's segments, read once per redirect: where functions may be and where their
/// bytes are in the file.
pub(super) struct Executable {
    segments: Vec<LoadedSegment>,
    file: std::fs::File,
}

impl Executable {
    pub(super) fn open() -> Result<Executable, EntryError> {
        let (_, segments) = executable_segments();
        let file = std::fs::File::open("/proc/self/exe").map_err(|error| EntryError::Os {
            what: "opening the executable (/proc/self/exe)",
            error: error.to_string(),
        })?;
        Ok(Executable { segments, file })
    }

    /// Checks `name`'s entry can take a jump: it lies in the executable's code, the jump fits in
    /// its `size` bytes or in padding after it, and its first bytes are the file's. Returns those
    /// bytes.
    pub(super) fn check_entry(
        &self,
        name: &str,
        entry: usize,
        size: usize,
    ) -> Result<[u8; JUMP_LEN], EntryError> {
        let segment = self
            .segments
            .iter()
            .find(|s| s.executable && s.start <= entry && entry + JUMP_LEN <= s.end)
            .ok_or_else(|| EntryError::NotInExecutable {
                name: name.to_owned(),
                address: entry,
            })?;
        let current = read_code(entry);
        if size == 0 {
            return Err(EntryError::SizeUnknown {
                name: name.to_owned(),
            });
        }
        let padding = &current[size.min(JUMP_LEN)..];
        if !padding.iter().all(|&b| b == 0xcc || b == 0x90) {
            return Err(EntryError::NoRoom {
                name: name.to_owned(),
                size,
            });
        }
        let expected = self.file_bytes(segment, entry)?;
        if current != expected {
            return Err(EntryError::Modified {
                name: name.to_owned(),
                found: hex(&current),
                expected: hex(&expected),
            });
        }
        Ok(current)
    }

    fn file_bytes(
        &self,
        segment: &LoadedSegment,
        entry: usize,
    ) -> Result<[u8; JUMP_LEN], EntryError> {
        let within = (entry - segment.start) as u64;
        let mut bytes = [0u8; JUMP_LEN];
        if within + JUMP_LEN as u64 > segment.file_len {
            return Ok(read_code(entry));
        }
        self.file
            .read_exact_at(&mut bytes, segment.file_offset + within)
            .map_err(|error| EntryError::Os {
                what: "reading the executable's code",
                error: error.to_string(),
            })?;
        Ok(bytes)
    }
}

/// The first bytes at `entry` now.
pub(super) fn read_code(entry: usize) -> [u8; JUMP_LEN] {
    let mut bytes = [0u8; JUMP_LEN];
    for (i, byte) in bytes.iter_mut().enumerate() {
        // SAFETY: callers pass addresses inside the executable's mapped code segment (checked by
        // `check_entry` or recorded when a jump was written there), readable for the process's life.
        *byte = unsafe { std::ptr::read_volatile((entry + i) as *const u8) };
    }
    bytes
}

/// `jmp rel32` from `entry` to `slot`, or `None` when the slot is not within ±2 GiB.
pub(super) fn jump_to(entry: usize, slot: usize) -> Option<[u8; JUMP_LEN]> {
    let displacement = (slot as i64).checked_sub(entry as i64 + JUMP_LEN as i64)?;
    let displacement = i32::try_from(displacement).ok()?;
    let mut bytes = [0xe9, 0, 0, 0, 0];
    bytes[1..].copy_from_slice(&displacement.to_le_bytes());
    Some(bytes)
}

/// The whole pages holding `JUMP_LEN` bytes at each of `entries`, adjacent pages merged: what
/// one stop makes writable, with one `mprotect` per range.
pub(super) fn page_ranges(entries: &[usize]) -> Vec<(usize, usize)> {
    let page = page_size();
    let mut pages: Vec<(usize, usize)> = entries
        .iter()
        .map(|&e| (e & !(page - 1), (e + JUMP_LEN + page - 1) & !(page - 1)))
        .collect();
    pages.sort_unstable();
    let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(pages.len());
    for (start, end) in pages {
        match ranges.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => ranges.push((start, end)),
        }
    }
    ranges
}

/// Makes the executable's code pages `ranges` writable (and still executable: the writing thread
/// may run code on them), or read-and-execute again. Allocates nothing and takes no lock.
///
/// # Safety
/// `ranges` must be whole pages of the executable's code segments; while they are writable, no
/// other thread may run or be about to run bytes being written (every other thread is stopped
/// outside them).
pub(super) unsafe fn make_writable(ranges: &[(usize, usize)], writable: bool) -> Result<(), i32> {
    let protection = if writable {
        libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC
    } else {
        libc::PROT_READ | libc::PROT_EXEC
    };
    for &(start, end) in ranges {
        // SAFETY: the caller's promise.
        if unsafe { libc::mprotect(start as *mut libc::c_void, end - start, protection) } != 0 {
            return Err(errno());
        }
    }
    Ok(())
}

/// Writes `bytes` at `address`: with one aligned 8-byte store when they lie inside one aligned
/// 8-byte word (a function entry is 16-byte aligned, so the jump at it always does), so a thread
/// fetching them at the same moment gets all old or all new bytes, never a mix. Bytes that
/// straddle two words are stored one by one; that is safe only with every thread that could run
/// them stopped or proven asleep, which the write also needs for its other reasons (`write.rs`).
///
/// # Safety
/// The bytes must lie in pages [`make_writable`] made writable, and no other thread may run or be
/// about to run them, but for the all-or-nothing store above.
pub(super) unsafe fn write_code(address: usize, bytes: &[u8; JUMP_LEN]) {
    let word = address & !7;
    let within = address - word;
    if within + JUMP_LEN <= 8 {
        // SAFETY: an aligned word of writable code pages (the caller's promise); nothing else
        // writes code meanwhile (the registry's lock), so its other bytes are kept as read.
        let atomic = unsafe { AtomicU64::from_ptr(word as *mut u64) };
        let mut new = atomic.load(Ordering::Relaxed).to_le_bytes();
        new[within..within + JUMP_LEN].copy_from_slice(bytes);
        atomic.store(u64::from_le_bytes(new), Ordering::Release);
        return;
    }
    for (i, &byte) in bytes.iter().enumerate() {
        // SAFETY: the caller's promise.
        unsafe { std::ptr::write_volatile((address + i) as *mut u8, byte) };
    }
}

/// Registers the process for [`sync_cores`], once (a system call that may take milliseconds the
/// first time: call it before stopping threads). Does nothing where the kernel lacks the command.
pub(super) fn prepare_sync_cores() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `membarrier` with a command and flags 0 reads nothing from memory.
        let supported = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0) };
        let registered = supported >= 0
            && supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE != 0
            // SAFETY: as above.
            && unsafe {
                libc::syscall(
                    libc::SYS_membarrier,
                    MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
                    0,
                    0,
                )
            } == 0;
        SYNC_CORE_REGISTERED.store(registered, Ordering::SeqCst);
    });
}

static SYNC_CORE_REGISTERED: AtomicBool = AtomicBool::new(false);

/// Makes every thread of the process execute a serialising instruction before it next runs user
/// code (`membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE)`), as cross-modifying code needs
/// on x86: threads running now are interrupted; a thread asleep in the kernel serialises on its
/// way back to user space (the kernel guarantees it to a registered process: the CR3 write of a
/// switch from another process, or `sync_core_before_usermode`); a parked thread serialises
/// anyway, returning from its signal. Takes no lock and allocates nothing; does nothing unless
/// [`prepare_sync_cores`] registered the process.
pub(super) fn sync_cores() {
    if SYNC_CORE_REGISTERED.load(Ordering::SeqCst) {
        // SAFETY: as in `prepare_sync_cores`.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE,
                0,
                0,
            )
        };
    }
}

// From linux/membarrier.h (the libc crate does not have them).
const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE: libc::c_long = 1 << 5;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: libc::c_long = 1 << 6;

pub(super) fn page_size() -> usize {
    // SAFETY: `sysconf` has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

pub(super) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
