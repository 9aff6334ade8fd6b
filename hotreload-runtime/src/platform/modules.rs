//! The loaded objects' segments, as the dynamic loader reports them: where patch code lies (to
//! find threads running it) and what the executable maps (to check redirects before loading).

use std::ffi::{c_void, CStr};

/// One loaded object's program headers, relative to its load base.
struct Object<'a> {
    /// `None` for the executable (the first object).
    name: Option<&'a CStr>,
    base: usize,
    headers: &'a [libc::Elf64_Phdr],
}

/// Calls `each` for every loaded object, the executable first.
fn for_each_object(mut each: impl FnMut(Object<'_>)) {
    /// # Safety
    /// `info` must be a valid `dl_phdr_info` and `data` the `&mut dyn FnMut` `for_each_object`
    /// passes, as `dl_iterate_phdr` guarantees during the call.
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: the caller's promise.
        let (each, info) = unsafe {
            (
                &mut *data.cast::<(&mut dyn FnMut(Object<'_>), bool)>(),
                &*info,
            )
        };
        let first = !each.1;
        each.1 = true;
        // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers while the call runs.
        let headers =
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        // SAFETY: a non-null `dlpi_name` is a NUL-terminated string owned by the loader.
        let name = (!first && !info.dlpi_name.is_null())
            .then(|| unsafe { CStr::from_ptr(info.dlpi_name) });
        (each.0)(Object {
            name,
            base: info.dlpi_addr as usize,
            headers,
        });
        0
    }
    let mut state: (&mut dyn FnMut(Object<'_>), bool) = (&mut each, false);
    // SAFETY: `visit` matches the callback type and `data` points to `state`, which outlives the
    // call and is only used through that pointer while it runs.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut state as *mut _ as *mut c_void).cast()) };
}

/// The executable segments of the loaded libraries opened from `paths`: `(index in paths,
/// start, end)`, absolute.
pub(crate) fn code_ranges(paths: &[&CStr]) -> Vec<(usize, usize, usize)> {
    let mut ranges = Vec::new();
    for_each_object(|object| {
        let Some(index) = object.name.and_then(|n| paths.iter().position(|p| *p == n)) else {
            return;
        };
        for header in object.headers {
            if header.p_type == libc::PT_LOAD && header.p_flags & libc::PF_X != 0 {
                let start = object.base + header.p_vaddr as usize;
                ranges.push((index, start, start + header.p_memsz as usize));
            }
        }
    });
    ranges
}

/// What the executable maps: its `PT_LOAD` segments (offsets from its load base) and the size
/// of its thread-local block.
#[derive(Debug, Default)]
pub(crate) struct ExecutableLayout {
    pub(crate) segments: Vec<(u64, u64)>,
    pub(crate) tls_len: u64,
}

/// The executable's [`ExecutableLayout`].
pub(crate) fn executable_layout() -> ExecutableLayout {
    let mut layout = ExecutableLayout::default();
    let mut seen = false;
    for_each_object(|object| {
        if seen || object.name.is_some() {
            return;
        }
        seen = true;
        for header in object.headers {
            if header.p_type == libc::PT_LOAD {
                layout
                    .segments
                    .push((header.p_vaddr, header.p_vaddr + header.p_memsz));
            } else if header.p_type == libc::PT_TLS {
                layout.tls_len = header.p_memsz;
            }
        }
    });
    layout
}

/// One `PT_LOAD` segment of the executable, absolute in memory, with where its bytes are in the
/// file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadedSegment {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) file_offset: u64,
    pub(crate) file_len: u64,
    pub(crate) executable: bool,
}

/// The executable's load base and its `PT_LOAD` segments.
pub(crate) fn executable_segments() -> (usize, Vec<LoadedSegment>) {
    let mut base = 0;
    let mut segments = Vec::new();
    let mut seen = false;
    for_each_object(|object| {
        if seen || object.name.is_some() {
            return;
        }
        seen = true;
        base = object.base;
        for header in object.headers {
            if header.p_type == libc::PT_LOAD {
                let start = object.base + header.p_vaddr as usize;
                segments.push(LoadedSegment {
                    start,
                    end: start + header.p_memsz as usize,
                    file_offset: header.p_offset,
                    file_len: header.p_filesz,
                    executable: header.p_flags & libc::PF_X != 0,
                });
            }
        }
    });
    (base, segments)
}

/// Where the executable is loaded: what its symbols' and a manifest's offsets are relative to.
pub(crate) fn executable_base() -> usize {
    executable_segments().0
}

/// Where the loaded library opened from `path` is loaded, and its executable segments
/// (absolute), if it is loaded.
pub(crate) fn library_code(path: &CStr) -> Option<(usize, Vec<(usize, usize)>)> {
    let mut found = None;
    for_each_object(|object| {
        if found.is_some() || object.name != Some(path) {
            return;
        }
        let code = object
            .headers
            .iter()
            .filter(|h| h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_X != 0)
            .map(|h| {
                let start = object.base + h.p_vaddr as usize;
                (start, start + h.p_memsz as usize)
            })
            .collect();
        found = Some((object.base, code));
    });
    found
}
