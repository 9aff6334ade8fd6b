//! Linux: the executable's GNU build id, read from its program headers in memory, and patch
//! libraries opened from a `memfd` so the verified bytes are exactly what the loader maps.

use std::collections::BTreeMap;
use std::ffi::{c_int, c_void, CString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};

use crate::error::Error;
use crate::wire::patch_file::{hex, StaticRedirect};

/// `NT_GNU_BUILD_ID`: the note type of a GNU build id.
const NT_GNU_BUILD_ID: u32 = 3;

/// The GNU build id of the running executable, lowercase hex; read once, then cached.
pub(crate) fn own_build_id() -> Result<&'static str, Error> {
    static BUILD_ID: OnceLock<Result<String, String>> = OnceLock::new();
    match BUILD_ID.get_or_init(read_own_build_id) {
        Ok(id) => Ok(id),
        Err(reason) => Err(Error::BuildId {
            reason: reason.clone(),
        }),
    }
}

fn read_own_build_id() -> Result<String, String> {
    let mut found: Option<Result<Vec<u8>, String>> = None;
    // SAFETY: `main_program_build_id` matches the callback type `dl_iterate_phdr` expects, and
    // `data` points to `found`, which outlives the call and is only used through that pointer
    // while the call runs.
    unsafe {
        libc::dl_iterate_phdr(
            Some(main_program_build_id),
            (&mut found as *mut Option<Result<Vec<u8>, String>>).cast::<c_void>(),
        );
    }
    match found {
        Some(Ok(id)) => Ok(hex(&id)),
        Some(Err(reason)) => Err(reason),
        None => Err("the dynamic loader reported no loaded object".into()),
    }
}

/// `dl_iterate_phdr` callback: looks at the first object (the main program) and stops.
///
/// # Safety
/// `info` must point to a valid `dl_phdr_info` whose program headers and note segments are
/// mapped, as the loader guarantees during the call; `data` must point to an
/// `Option<Result<Vec<u8>, String>>` not otherwise borrowed during the call.
unsafe extern "C" fn main_program_build_id(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: the caller (`read_own_build_id`) passes a pointer to its `found`.
    let found = unsafe { &mut *data.cast::<Option<Result<Vec<u8>, String>>>() };
    // SAFETY: the loader passes a valid `dl_phdr_info` for the duration of the call.
    let info = unsafe { &*info };
    let headers = if info.dlpi_phdr.is_null() {
        &[][..]
    } else {
        // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers of the mapped object.
        unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
    };
    let mut result = Err("the executable has no GNU build id note".to_string());
    for header in headers.iter().filter(|h| h.p_type == libc::PT_NOTE) {
        let start = (info.dlpi_addr as usize).wrapping_add(header.p_vaddr as usize);
        // SAFETY: a PT_NOTE segment is part of a loaded segment, mapped readable at the object's
        // base plus its virtual address, `p_memsz` bytes long.
        let notes =
            unsafe { std::slice::from_raw_parts(start as *const u8, header.p_memsz as usize) };
        if let Some(id) = find_build_id(notes, header.p_align as usize) {
            result = Ok(id.to_vec());
            break;
        }
    }
    *found = Some(result);
    1
}

/// The descriptor of the `NT_GNU_BUILD_ID` note named `GNU` in a note segment, if there is one.
/// `align` is the segment's alignment: name and descriptor are padded to 8 bytes in 8-aligned
/// note segments, to 4 otherwise.
fn find_build_id(mut notes: &[u8], align: usize) -> Option<&[u8]> {
    let align = if align == 8 { 8 } else { 4 };
    let pad = |len: usize| len.checked_add(align - 1).map(|n| n & !(align - 1));
    let word = |bytes: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    while notes.len() >= 12 {
        let name_len = word(notes, 0)? as usize;
        let desc_len = word(notes, 4)? as usize;
        let kind = word(notes, 8)?;
        // Padding counts from the start of the note, which is aligned.
        let name_start: usize = 12;
        let desc_start = pad(name_start.checked_add(name_len)?)?;
        let next = pad(desc_start.checked_add(desc_len)?)?;
        let name = notes.get(name_start..name_start + name_len)?;
        let desc = notes.get(desc_start..desc_start.checked_add(desc_len)?)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return Some(desc);
        }
        notes = notes.get(next..)?;
    }
    None
}

/// A patch library opened for good: it is never closed, since a frame may still run in it.
pub(crate) struct OpenLibrary {
    /// The library's handle; dropping it would `dlclose`, so it is kept forever.
    pub(crate) _library: Library,
    /// The path it was opened from, which names it among the loaded objects. The memfd it names
    /// is closed once the library is mapped; the path stays unique (see [`unique_fd_path`]).
    pub(crate) path: CString,
    /// Size of the library's file.
    pub(crate) mapped_bytes: u64,
}

/// Why a library could not be opened.
pub(crate) enum OpenError {
    /// The process has no file descriptor left (`EMFILE`, `ENFILE`).
    OutOfDescriptors(String),
    /// Anything else: the loader's or the system's message.
    Failed(String),
}

/// Writes `bytes` to a new memfd named after `name` and opens it with `RTLD_NOW | RTLD_GLOBAL`
/// (so later patches resolve the state this one introduces, and every symbol resolves now rather
/// than at some later call). Opening runs the library's constructors. The memfd is closed before
/// returning: the mapping keeps the library's memory, so a patch costs no descriptor.
pub(crate) fn open_library(
    name: &str,
    bytes: &[u8],
    redirects: &[StaticRedirect],
    earlier: &BTreeMap<String, CString>,
) -> Result<OpenLibrary, OpenError> {
    let failed = |what: &str, error: std::io::Error| {
        let message = format!("{what} failed: {error}");
        match error.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE) => OpenError::OutOfDescriptors(message),
            _ => OpenError::Failed(message),
        }
    };
    let c_name = CString::new(format!("hotpatch-{name}"))
        .map_err(|_| OpenError::Failed("the patch name contains a NUL byte".to_string()))?;
    // SAFETY: `c_name` is a NUL-terminated string that outlives the call.
    let fd = unsafe { libc::memfd_create(c_name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(failed("memfd_create", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just created and is owned by nothing else; the `File` closes it.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(bytes)
        .map_err(|error| failed("writing the library to a memfd", error))?;
    let path = unique_fd_path(file.as_raw_fd());
    let c_path = CString::new(path.clone())
        .map_err(|_| OpenError::Failed("the library path contains a NUL byte".to_string()))?;
    // SAFETY: opening a library runs its constructors. The bytes passed the patch file's
    // integrity check and the base build check, and they are a patch library built for this
    // process by `cargo hotpatch`; running its constructors (which register its hot functions) is
    // what loading a patch means. The library is never closed (see `OpenLibrary`).
    let library =
        unsafe { Library::open(Some(&path), RTLD_NOW | RTLD_GLOBAL) }.map_err(|error| {
            let message = format!("dlopen failed: {error}");
            // The loader's message ends with the system's: "Too many open files" (in system).
            if message.contains("Too many open files") {
                OpenError::OutOfDescriptors(message)
            } else {
                OpenError::Failed(message)
            }
        })?;
    drop(file);
    // Before any of its hot functions is committed, point its cells at the host's statics.
    if let Err(reason) = super::cells::fill(&c_path, redirects, earlier) {
        // Its constructors have run and registered its functions: it must stay mapped.
        std::mem::forget(library);
        return Err(OpenError::Failed(reason));
    }
    Ok(OpenLibrary {
        _library: library,
        path: c_path,
        mapped_bytes: bytes.len() as u64,
    })
}

/// A path to descriptor `fd` that no library opened before was given. The loader takes a path
/// it has opened before for the library it opened then, and a closed memfd's number is reused;
/// so each load spells `/proc/self/fd/N` its own way: its number in binary, one `./` (1) or `//`
/// (0) per bit, after `/proc/self/`. Every spelling names the same file.
fn unique_fd_path(fd: i32) -> String {
    static LOADS: AtomicU64 = AtomicU64::new(1);
    let load = LOADS.fetch_add(1, Ordering::Relaxed);
    let bits = 64 - load.leading_zeros();
    let spelled: String = (0..bits)
        .rev()
        .map(|bit| if load >> bit & 1 == 1 { "./" } else { "//" })
        .collect();
    format!("/proc/self/{spelled}fd/{fd}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], kind: u32, desc: &[u8], align: usize) -> Vec<u8> {
        let pad = |v: &mut Vec<u8>| {
            while v.len() % align != 0 {
                v.push(0);
            }
        };
        let mut out = Vec::new();
        out.extend_from_slice(&(name.len() as u32).to_ne_bytes());
        out.extend_from_slice(&(desc.len() as u32).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(name);
        pad(&mut out);
        out.extend_from_slice(desc);
        pad(&mut out);
        out
    }

    #[test]
    fn finds_the_build_id_among_other_notes() {
        for align in [4, 8] {
            let mut notes = note(b"GNU\0", 1, &[0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0], align);
            notes.extend(note(b"Go\0", 3, b"not this", align));
            notes.extend(note(b"GNU\0", 3, &[0xab, 0xcd, 0x01], align));
            assert_eq!(find_build_id(&notes, align), Some(&[0xab, 0xcd, 0x01][..]));
        }
    }

    #[test]
    fn truncated_notes_find_nothing() {
        let notes = note(b"GNU\0", 3, &[1; 20], 4);
        for cut in 0..notes.len() - 1 {
            assert_eq!(find_build_id(&notes[..cut], 4), None, "cut at {cut}");
        }
    }

    #[test]
    fn every_load_gets_a_path_of_its_own_naming_the_descriptor() {
        let paths: Vec<String> = (0..300).map(|_| unique_fd_path(7)).collect();
        let distinct: std::collections::BTreeSet<&String> = paths.iter().collect();
        assert_eq!(distinct.len(), paths.len());
        let file = File::open("/proc/self/exe").unwrap();
        let path = unique_fd_path(file.as_raw_fd());
        let target = std::fs::canonicalize(&path).unwrap();
        assert_eq!(
            target,
            std::fs::canonicalize("/proc/self/exe").unwrap(),
            "{path}"
        );
    }

    #[test]
    fn own_build_id_is_hex_and_stable() {
        let id = own_build_id().unwrap();
        assert!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(own_build_id().unwrap(), id);
    }
}
