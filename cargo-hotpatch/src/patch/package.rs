//! Packaging a patch: the manifest (what the patch changes, which host statics its cells point
//! at, which state types it carries) and the linked library, written as one [`PatchFile`].

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use hotreload_runtime::wire::patch_file::{
    Manifest, PatchFile, PatchedHotFunction, PatchedState, StaticRedirect,
};

use crate::host::{BaseRecord, CrateRecord, HostLocalData, HotFunctions};
use crate::object::read::cell_offsets;
use crate::patch::introduced::Introduced;
use crate::patch::redirect::{static_name, Redirections};

/// Where the linked library's cells are and what the runtime writes into each: a host static's
/// offset, an earlier patch's static, or (for a thread-local) the executable's TLS module.
pub fn static_redirects(
    library: &Path,
    redirections: &Redirections,
    introduced: &Introduced,
    host_local_data: &HostLocalData,
    targets: &HostLocalData,
) -> anyhow::Result<Vec<StaticRedirect>> {
    let cells = cell_offsets(
        library,
        redirections
            .address_cells
            .union(&redirections.thread_local_cells),
    )?;
    let mut redirects: Vec<StaticRedirect> = cells
        .iter()
        .map(|(mangled, cell_offset)| {
            let thread_local = redirections.thread_local_cells.contains(mangled);
            StaticRedirect {
                name: static_name(mangled),
                cell_offset: *cell_offset,
                host_offset: if thread_local { 0 } else { targets[mangled] },
                thread_local,
                module: introduced.origin_patch(mangled, host_local_data),
            }
        })
        .collect();
    // A pointer in data is written like a cell: the running static's address (plus the offset
    // into it the pointer had) at the pointer's place in the library.
    let pointers = &redirections.data_pointers;
    let referrers = cell_offsets(library, pointers.iter().map(|p| &p.referrer))?;
    for pointer in pointers {
        // Data the linker dropped (nothing reaches it) holds no pointer to set.
        let Some(referrer) = referrers.get(&pointer.referrer) else {
            continue;
        };
        let host_offset = targets[&pointer.target].checked_add_signed(pointer.addend);
        redirects.push(StaticRedirect {
            name: static_name(&pointer.target),
            cell_offset: referrer + pointer.offset,
            host_offset: host_offset.context("a pointer in data points before its module")?,
            thread_local: false,
            module: introduced.origin_patch(&pointer.target, host_local_data),
        });
    }
    Ok(redirects)
}

/// What a patch of `changed` against `base` carries (its library's hash and length are filled
/// when it is packaged).
pub fn manifest(
    base: &BaseRecord,
    changed: &[&CrateRecord],
    hot: &HotFunctions,
    changed_functions: Vec<String>,
    redirects: Vec<StaticRedirect>,
    states: Vec<PatchedState>,
) -> Manifest {
    Manifest {
        base: base.identity.clone(),
        crates: changed.iter().map(|c| c.name.clone()).collect(),
        hot_functions: hot
            .iter()
            .map(|(path, fingerprint)| PatchedHotFunction {
                path: path.clone(),
                fingerprint: *fingerprint,
            })
            .collect(),
        changed_functions,
        redirects,
        entry_redirects: Vec::new(),
        states,
        library_sha256: String::new(),
        library_len: 0,
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

/// The patch file of `manifest` and the library at `library`.
pub fn package(manifest: Manifest, library: &Path) -> anyhow::Result<PatchFile> {
    let library =
        std::fs::read(library).with_context(|| format!("reading {}", library.display()))?;
    Ok(PatchFile::new(manifest, library))
}

/// Writes a patch file to `output`.
pub fn write(file: &PatchFile, output: &Path) -> anyhow::Result<()> {
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent).ok();
    }
    std::fs::write(output, file.to_bytes()).with_context(|| format!("writing {}", output.display()))
}
