//! Whether a stopped thread is inside bytes about to be written: its instruction, or any word of
//! its stack (a return address, or the instruction a signal interrupted, saved in the signal's
//! frame), lies in `entry + 1 ..= entry + 4` of a function being written.
//!
//! A stack is read from the thread's stack pointer up to the end of the mapping holding it, as
//! `/proc/self/maps` gave it before the stop, at most [`MAX_STACK_SCAN`] bytes, through
//! `process_vm_readv` on this process: memory unmapped meanwhile ends the read instead of faulting.

use super::slots::inside_jump;
use super::stop::StoppedThread;
use super::EntryError;

/// The most bytes of one thread's stack scanned.
const MAX_STACK_SCAN: usize = 16 << 20;
/// Scanned without a known mapping (a thread whose stack was mapped after the maps were read).
const UNKNOWN_STACK_SCAN: usize = 1 << 20;
/// Words read per system call.
const CHUNK_WORDS: usize = 8192;

/// What the scan needs, allocated before the stop.
pub(super) struct Scanner {
    /// Entries to be written, sorted.
    entries: Vec<usize>,
    /// Mappings `(start, end)`, sorted.
    mappings: Vec<(usize, usize)>,
    buffer: Vec<u64>,
}

impl Scanner {
    /// A scanner for the functions at `entries` (any order). Refused where this process may not
    /// read its own memory through `process_vm_readv` (a seccomp filter): stacks could not be
    /// checked.
    pub(super) fn new(entries: impl IntoIterator<Item = usize>) -> Result<Scanner, EntryError> {
        let mut entries: Vec<usize> = entries.into_iter().collect();
        entries.sort_unstable();
        let mut buffer = vec![0u64; CHUNK_WORDS];
        let probe = std::hint::black_box([0x5eed_u64; 1]);
        if read_own(probe.as_ptr() as usize, &mut buffer[..1]) != 1 || buffer[0] != probe[0] {
            return Err(EntryError::Os {
                what: "reading this process's own memory with process_vm_readv (needed to check the threads' stacks)",
                error: std::io::Error::last_os_error().to_string(),
            });
        }
        Ok(Scanner {
            entries,
            mappings: read_mappings(),
            buffer,
        })
    }

    /// The entry `thread` is inside, if any. Allocates nothing.
    pub(super) fn entry_inside(&mut self, thread: &StoppedThread) -> Option<usize> {
        if let Some(entry) = self.containing(thread.rip) {
            return Some(entry);
        }
        let start = thread.rsp & !7;
        let end = match self
            .mappings
            .iter()
            .find(|&&(s, e)| s <= start && start < e)
        {
            Some(&(_, end)) => end.min(start.saturating_add(MAX_STACK_SCAN)),
            None => start.saturating_add(UNKNOWN_STACK_SCAN),
        };
        let mut at = start;
        while at < end {
            let words = ((end - at) / 8).min(CHUNK_WORDS);
            let read = read_own(at, &mut self.buffer[..words]);
            if let Some(entry) = self.buffer[..read]
                .iter()
                .find_map(|&w| self.containing(w as usize))
            {
                return Some(entry);
            }
            if read < words || read == 0 {
                break;
            }
            at += read * 8;
        }
        None
    }

    /// The entry whose overwritten bytes (after the first) hold `address`.
    fn containing(&self, address: usize) -> Option<usize> {
        let after = self.entries.partition_point(|&e| e < address);
        let entry = *self.entries.get(after.checked_sub(1)?)?;
        inside_jump(entry, address).then_some(entry)
    }
}

/// Reads up to `into.len()` words of this process's memory at `address`; returns how many were
/// read (fewer when the memory ends).
fn read_own(address: usize, into: &mut [u64]) -> usize {
    let local = libc::iovec {
        iov_base: into.as_mut_ptr().cast(),
        iov_len: into.len() * 8,
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: into.len() * 8,
    };
    // SAFETY: `local` describes `into`, writable for its length; the remote range is only read
    // by the kernel, which reports unmapped memory instead of faulting.
    let read = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    usize::try_from(read).map_or(0, |bytes| bytes / 8)
}

/// The process's mappings, sorted, from `/proc/self/maps`.
fn read_mappings() -> Vec<(usize, usize)> {
    let text = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut mappings: Vec<(usize, usize)> = text
        .lines()
        .filter_map(|line| {
            let range = line.split_whitespace().next()?;
            let (start, end) = range.split_once('-')?;
            Some((
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
            ))
        })
        .collect();
    mappings.sort_unstable();
    mappings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_inside_the_first_bytes_anywhere_on_a_stack_is_found() {
        let entry = 0x7e57_0000usize;
        let mut scanner = Scanner::new([entry]).unwrap();
        let mut stack = vec![0u64; 4096];
        let rsp = stack.as_ptr() as usize;
        let mut found = |words: &mut Vec<u64>, at: usize, word: usize, rip: usize| {
            words[at] = word as u64;
            std::hint::black_box(&words);
            scanner.entry_inside(&StoppedThread { tid: 1, rip, rsp })
        };
        let elsewhere = entry + 0x100;
        assert_eq!(found(&mut stack, 3000, entry + 3, elsewhere), Some(entry));
        assert_eq!(found(&mut stack, 3000, entry + 1, elsewhere), Some(entry));
        assert_eq!(found(&mut stack, 3000, entry + 4, elsewhere), Some(entry));
        assert_eq!(
            found(&mut stack, 3000, entry, elsewhere),
            None,
            "the entry itself is fine"
        );
        assert_eq!(
            found(&mut stack, 3000, entry + 5, elsewhere),
            None,
            "after the jump"
        );
        assert_eq!(
            found(&mut stack, 0, 0, entry + 2),
            Some(entry),
            "the instruction"
        );
    }
}
