//! The bytes at a function's entry: what must hold before a jump is written there (room, the
//! executable's own bytes), and writing them.

use std::os::unix::fs::FileExt;

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

/// Writes `bytes` at `address`.
///
/// # Safety
/// The bytes must lie in pages [`make_writable`] made writable, and no other thread may run or be
/// about to run them.
pub(super) unsafe fn write_code(address: usize, bytes: &[u8]) {
    for (i, &byte) in bytes.iter().enumerate() {
        // SAFETY: the caller's promise.
        unsafe { std::ptr::write_volatile((address + i) as *mut u8, byte) };
    }
}

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
