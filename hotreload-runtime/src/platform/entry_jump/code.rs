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

/// Writes `bytes` at `address` in code mapped read-and-execute, making its pages writable (and
/// still executable: the writing thread may run code on them) only for the copy. Allocates
/// nothing and takes no lock.
///
/// # Safety
/// `address..address + bytes.len()` must be mapped code of the executable, and no other thread
/// may run or be about to run the bytes written (every other thread is stopped outside them).
pub(super) unsafe fn write_code(address: usize, bytes: &[u8]) -> Result<(), i32> {
    let page = page_size();
    let start = address & !(page - 1);
    let end = (address + bytes.len() + page - 1) & !(page - 1);
    let writable = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
    // SAFETY: the range is whole pages of the executable's code (the caller's promise).
    if unsafe { libc::mprotect(start as *mut libc::c_void, end - start, writable) } != 0 {
        return Err(errno());
    }
    for (i, &byte) in bytes.iter().enumerate() {
        // SAFETY: the page is writable now; no other thread runs these bytes (the caller's promise).
        unsafe { std::ptr::write_volatile((address + i) as *mut u8, byte) };
    }
    let code = libc::PROT_READ | libc::PROT_EXEC;
    // SAFETY: as above; gives the pages back the protection of the executable's code.
    if unsafe { libc::mprotect(start as *mut libc::c_void, end - start, code) } != 0 {
        return Err(errno());
    }
    Ok(())
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
