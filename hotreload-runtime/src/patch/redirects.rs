//! Checking a patch's redirects against its library before anything runs: each cell the runtime
//! will write after loading must lie in writable memory of the library that stays writable, that
//! is in a writable `PT_LOAD` segment and outside `PT_GNU_RELRO` (the dynamic loader makes that
//! range read-only once it has relocated the library, and a write there kills the process).
//! Read from the library's own program headers, so `check` refuses what `apply` would. The
//! value written is checked too: a static of the executable must lie in one of its loaded
//! segments, a thread-local inside its thread-local block (a static of an earlier patch is
//! checked against that library when it is filled).

use crate::error::Error;
use crate::platform::{self, ExecutableLayout};
use crate::wire::patch_file::PatchFile;
use crate::wire::patch_file::StaticRedirect;

const PT_LOAD: u32 = 1;
const PT_GNU_RELRO: u32 = 0x6474_e552;
const PF_W: u32 = 2;
/// RELRO is made read-only from the start of its first page.
const PAGE: u64 = 4096;

/// One program header's type, flags and memory range.
struct Segment {
    kind: u32,
    flags: u32,
    start: u64,
    end: u64,
}

/// Refuses the patch if a redirect's cell is not in writable, non-RELRO memory of its library.
pub(crate) fn check_cells(patch: &PatchFile) -> Result<(), Error> {
    if patch.manifest.redirects.is_empty() {
        return Ok(());
    }
    let refuse = |name: &str, reason: String| Error::BadRedirect {
        patch: patch.short_id().to_owned(),
        name: name.to_owned(),
        reason,
    };
    let segments =
        program_headers(&patch.library).map_err(|reason| refuse("(every redirect)", reason))?;
    let executable = platform::executable_layout();
    for redirect in &patch.manifest.redirects {
        let len = if redirect.thread_local { 16 } else { 8 };
        let start = redirect.cell_offset;
        let end = start
            .checked_add(len)
            .ok_or_else(|| refuse(&redirect.name, format!("cell offset {start:#x} overflows")))?;
        let writable = segments
            .iter()
            .any(|s| s.kind == PT_LOAD && s.flags & PF_W != 0 && start >= s.start && end <= s.end);
        if !writable {
            return Err(refuse(
                &redirect.name,
                format!("its cell at {start:#x} is not in a writable segment of the library"),
            ));
        }
        check_target(redirect, &executable).map_err(|reason| refuse(&redirect.name, reason))?;
        let relro = segments
            .iter()
            .find(|s| s.kind == PT_GNU_RELRO && start < s.end && end > s.start - s.start % PAGE);
        if let Some(relro) = relro {
            return Err(refuse(
                &redirect.name,
                format!(
                    "its cell at {start:#x} lies in the library's RELRO range {:#x}..{:#x}, which is read-only once loaded",
                    relro.start, relro.end
                ),
            ));
        }
    }
    Ok(())
}

/// Whether the address a redirect writes names memory of its module.
fn check_target(redirect: &StaticRedirect, executable: &ExecutableLayout) -> Result<(), String> {
    let offset = redirect.host_offset;
    if redirect.thread_local {
        if offset >= executable.tls_len {
            return Err(format!(
                "its thread-local offset {offset:#x} is outside the executable's thread-local block ({:#x} bytes)",
                executable.tls_len
            ));
        }
    } else if redirect.module.is_none()
        && !executable
            .segments
            .iter()
            .any(|&(start, end)| offset >= start && offset < end)
    {
        return Err(format!(
            "its static at offset {offset:#x} is outside the executable's loaded segments"
        ));
    }
    Ok(())
}

/// The program headers of a little-endian ELF64 library.
fn program_headers(elf: &[u8]) -> Result<Vec<Segment>, String> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return Err("the library is not a little-endian ELF64 object".into());
    }
    let phoff = read_u64(elf, 0x20)?;
    let entry_len = u64::from(read_u16(elf, 0x36)?);
    let count = u64::from(read_u16(elf, 0x38)?);
    let mut segments = Vec::new();
    for index in 0..count {
        let at = index
            .checked_mul(entry_len)
            .and_then(|o| o.checked_add(phoff))
            .and_then(|o| usize::try_from(o).ok())
            .ok_or("the library's program headers are out of range")?;
        let start = read_u64(elf, at + 16)?;
        let size = read_u64(elf, at + 40)?;
        segments.push(Segment {
            kind: read_u32(elf, at)?,
            flags: read_u32(elf, at + 4)?,
            start,
            end: start
                .checked_add(size)
                .ok_or("a segment's size overflows")?,
        });
    }
    Ok(segments)
}

fn read_bytes<const N: usize>(elf: &[u8], at: usize) -> Result<[u8; N], String> {
    elf.get(at..at.saturating_add(N))
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "the library's program headers are truncated".to_owned())
}

fn read_u16(elf: &[u8], at: usize) -> Result<u16, String> {
    read_bytes(elf, at).map(u16::from_le_bytes)
}

fn read_u32(elf: &[u8], at: usize) -> Result<u32, String> {
    read_bytes(elf, at).map(u32::from_le_bytes)
}

fn read_u64(elf: &[u8], at: usize) -> Result<u64, String> {
    read_bytes(elf, at).map(u64::from_le_bytes)
}
