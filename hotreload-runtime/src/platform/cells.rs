//! Filling a patch's cells: each holds the address of one of the executable's private statics
//! (or of a static an earlier patch introduced, in that patch's library). A pointer to such a
//! static in the patch's own data is filled the same way.

use std::collections::BTreeMap;
use std::ffi::{c_int, c_void, CStr, CString};

use crate::wire::patch_file::StaticRedirect;

/// A loaded object's base address and the address ranges of its segments.
#[derive(Debug, Default, Clone)]
struct Module {
    base: usize,
    /// `(start, end, writable)` of each `PT_LOAD` segment, absolute.
    segments: Vec<(usize, usize, bool)>,
    /// `(start, end)` of the `PT_GNU_RELRO` range, absolute: read-only once relocated.
    relro: Option<(usize, usize)>,
    /// The module id of its thread-local block (what `__tls_get_addr` takes); 0 for none.
    tls_module: usize,
}

struct Search<'a> {
    /// The libraries to find, by the path they were opened from.
    wanted: Vec<&'a CStr>,
    executable: Option<Module>,
    found: BTreeMap<CString, Module>,
}

/// Writes, for every redirect, the executable's address of the static into the library's cell.
///
/// Both addresses are checked against the modules' loaded segments first (the cell must lie in a
/// writable segment of the library outside its RELRO range, the static in a segment of the
/// executable), so a wrong manifest cannot make this write anywhere else.
///
/// `earlier` maps the id of each patch loaded before to the path its library was opened from.
pub(crate) fn fill(
    library_path: &CStr,
    redirects: &[StaticRedirect],
    earlier: &BTreeMap<String, CString>,
) -> Result<(), String> {
    if redirects.is_empty() {
        return Ok(());
    }
    let mut search = Search {
        wanted: wanted_libraries(library_path, redirects, earlier)?,
        executable: None,
        found: BTreeMap::new(),
    };
    // SAFETY: `visit` matches the callback type and `data` points to `search`, which outlives the
    // call and is only used through that pointer while it runs.
    unsafe {
        libc::dl_iterate_phdr(Some(visit), (&mut search as *mut Search).cast::<c_void>());
    }
    let executable = search
        .executable
        .ok_or("the dynamic loader did not report the executable")?;
    let library = search
        .found
        .get(library_path)
        .cloned()
        .ok_or("the dynamic loader did not report the patch library")?;
    let tls_module = if redirects
        .iter()
        .any(|r| r.thread_local && r.module.is_none())
    {
        executable_tls_module()?
    } else {
        0
    };
    let mut writes = Vec::with_capacity(redirects.len());
    let modules = Modules {
        executable: &executable,
        library: &library,
        found: &search.found,
        earlier,
    };
    for redirect in redirects {
        writes.push(modules.checked_write(redirect, tls_module)?);
    }
    for (cell, words, thread_local) in writes {
        // SAFETY: `cell` (8 or 16 bytes) lies in a writable loaded segment of the patch library
        // (checked above); it is the patch's own copy of the static (or a pointer in its own
        // data), which no code uses until the patch's hot functions are committed, after this.
        unsafe {
            (cell as *mut usize).write_unaligned(words[0]);
            if thread_local {
                (cell as *mut usize).add(1).write_unaligned(words[1]);
            }
        }
    }
    Ok(())
}

/// The libraries whose segments `fill` needs: the patch's own, and each earlier patch a redirect
/// points into.
fn wanted_libraries<'a>(
    library_path: &'a CStr,
    redirects: &[StaticRedirect],
    earlier: &'a BTreeMap<String, CString>,
) -> Result<Vec<&'a CStr>, String> {
    let mut wanted = vec![library_path];
    for redirect in redirects {
        if let Some(id) = &redirect.module {
            let path = earlier.get(id).ok_or_else(|| {
                format!(
                    "`{}` lives in patch {id}, which is not loaded in this process; apply that patch first, or rebuild this one against a fresh base",
                    redirect.name
                )
            })?;
            wanted.push(path);
        }
    }
    Ok(wanted)
}

/// The loaded modules a patch's redirects point into.
struct Modules<'a> {
    executable: &'a Module,
    library: &'a Module,
    found: &'a BTreeMap<CString, Module>,
    earlier: &'a BTreeMap<String, CString>,
}

impl Modules<'_> {
    /// The cell of `redirect` in the library and the words to write there, once both the cell and
    /// the static are found inside their modules' loaded segments.
    fn checked_write(
        &self,
        redirect: &StaticRedirect,
        tls_module: usize,
    ) -> Result<(usize, [usize; 2], bool), String> {
        let cell = offset(self.library.base, redirect.cell_offset)?;
        let holder = match &redirect.module {
            None => self.executable,
            Some(id) => self
                .found
                .get(self.earlier[id].as_c_str())
                .ok_or_else(|| format!("the dynamic loader did not report patch {id}"))?,
        };
        // An address cell holds one address; a thread-local's holds a `tls_index` of the module
        // holding the running thread-local (the executable, or the patch that introduced it).
        let (words, target_ok) = if redirect.thread_local {
            let offset = usize::try_from(redirect.host_offset).map_err(|e| e.to_string())?;
            let module = match redirect.module {
                None => tls_module,
                Some(_) => holder.tls_module,
            };
            ([module, offset], module != 0)
        } else {
            let target = offset(holder.base, redirect.host_offset)?;
            let inside = holder
                .segments
                .iter()
                .any(|&(start, end, _)| target >= start && target < end);
            ([target, 0], inside)
        };
        let len = if redirect.thread_local { 16 } else { 8 };
        let cell_ok = self
            .library
            .segments
            .iter()
            .any(|&(start, end, writable)| writable && cell >= start && cell + len <= end)
            && self
                .library
                .relro
                .is_none_or(|(start, end)| cell + len <= start - start % 4096 || cell >= end);
        if !cell_ok || !target_ok {
            return Err(format!(
                "the redirect of `{}` points outside the loaded modules; the patch is corrupt or not for this build",
                redirect.name
            ));
        }
        Ok((cell, words, redirect.thread_local))
    }
}

/// The module id of the executable's thread-local block (what `__tls_get_addr` takes).
fn executable_tls_module() -> Result<usize, String> {
    // SAFETY: `dlopen(NULL)` returns a handle to the main program without loading anything.
    let handle = unsafe { libc::dlopen(std::ptr::null(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
    if handle.is_null() {
        return Err("dlopen of the main program failed".into());
    }
    let mut module: usize = 0;
    // SAFETY: `handle` is a valid handle and RTLD_DI_TLS_MODID writes one `size_t` to `module`.
    let result = unsafe {
        libc::dlinfo(
            handle,
            libc::RTLD_DI_TLS_MODID,
            (&mut module as *mut usize).cast::<c_void>(),
        )
    };
    // SAFETY: `handle` came from `dlopen` above and is not used after this.
    unsafe { libc::dlclose(handle) };
    if result != 0 || module == 0 {
        return Err("the executable has no thread-local block to redirect to".into());
    }
    Ok(module)
}

fn offset(base: usize, offset: u64) -> Result<usize, String> {
    usize::try_from(offset)
        .ok()
        .and_then(|offset| base.checked_add(offset))
        .ok_or_else(|| format!("offset {offset:#x} is out of the address space"))
}

/// `dl_iterate_phdr` callback: records the executable (the first object) and the library.
///
/// # Safety
/// `info` must point to a valid `dl_phdr_info` whose program headers are mapped, as the loader
/// guarantees during the call; `data` must point to a `Search` not otherwise borrowed meanwhile.
unsafe extern "C" fn visit(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: the caller (`fill`) passes a pointer to its `search`.
    let search = unsafe { &mut *data.cast::<Search>() };
    // SAFETY: the loader passes a valid `dl_phdr_info` for the duration of the call.
    let info = unsafe { &*info };
    let module = || {
        let mut module = Module {
            base: info.dlpi_addr as usize,
            segments: Vec::new(),
            relro: None,
            tls_module: info.dlpi_tls_modid,
        };
        for index in 0..usize::from(info.dlpi_phnum) {
            // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers.
            let header = unsafe { &*info.dlpi_phdr.add(index) };
            if header.p_type == libc::PT_LOAD {
                let start = module.base + header.p_vaddr as usize;
                module.segments.push((
                    start,
                    start + header.p_memsz as usize,
                    header.p_flags & libc::PF_W != 0,
                ));
            } else if header.p_type == libc::PT_GNU_RELRO {
                let start = module.base + header.p_vaddr as usize;
                module.relro = Some((start, start + header.p_memsz as usize));
            }
        }
        module
    };
    if search.executable.is_none() {
        search.executable = Some(module());
    } else if !info.dlpi_name.is_null() {
        // SAFETY: a non-null `dlpi_name` is a NUL-terminated string owned by the loader.
        let name = unsafe { CStr::from_ptr(info.dlpi_name) };
        if search.wanted.contains(&name) {
            search.found.insert(name.to_owned(), module());
        }
    }
    0
}
