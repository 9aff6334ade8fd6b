//! Binding a patch's unchanged functions to the running copies, so the library carries only code
//! that differs from what the process runs.
//!
//! A rebuilt crate's objects hold every function of the crate and every generic instance it
//! uses; `--gc-sections` keeps what the hot functions and registrations reach, which on a real
//! crate is most of it (2,600 functions, 750 KB of code for a one-line edit of `examples/depot`).
//! Nearly all of them are byte for byte what the host already runs. A function is *bound* to the
//! host's copy when
//! - its machine code equals the base build's ([`crate::patch::changes::base_functions`]),
//! - nothing it reaches (calls, constants, vtables: everything but statics, which the patch shares
//!   with the host anyway) differs from the base, transitively: the host's copy would reach the
//!   old code,
//! - it touches none of the statics a patch keeps its own copy of (registrations, `#[hot_state]`
//!   descriptors): the host's copy would act on the host's items,
//! - the host's symbol table has exactly one function of that name.
//!
//! Its definition in the objects becomes an undefined reference, and [`stubs`] defines it again
//! as `jmp *cell(%rip)`, where the cell holds the running copy's address: the dynamic loader
//! computes it while relocating the library, from a function the executable exports and the patch
//! does not define (`main`, unless the patch rebuilds the binary) plus a constant, so a stub works before any constructor runs and the runtime has nothing to fill.
//! The linker then drops the original body and everything only it reached.

mod facts;
mod graph;
mod stubs;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::host::HostFunctions;

/// What binding did.
#[derive(Debug, Default)]
pub struct Bindings {
    /// The object defining the stubs, when any function was bound.
    pub stubs: Option<PathBuf>,
}

/// Binds every function of `objects` that may run as the host's copy (see the module docs),
/// rewriting the objects that define them in place and writing the stubs into `work_dir`.
/// `differs` holds the (normalised) names of the functions whose code is not the base's.
pub fn bind_unchanged(
    objects: &[PathBuf],
    differs: &BTreeSet<String>,
    host: &HostFunctions,
    work_dir: &Path,
) -> anyhow::Result<Bindings> {
    let graph = graph::ObjectGraph::read(objects)?;
    let Some((anchor, anchor_offset)) = host.anchor(|name| graph.defines(name)) else {
        return Ok(Bindings::default());
    };
    let bound = graph.bindable(differs, &host.offsets);
    if bound.is_empty() {
        return Ok(Bindings::default());
    }
    for (object, symbols) in graph.definitions_of(&bound) {
        undefine_symbols(&objects[object], &symbols)?;
    }
    let stubs: Vec<stubs::Stub> = bound
        .iter()
        .enumerate()
        .map(|(index, mangled)| stubs::Stub {
            function: mangled.clone(),
            cell: format!("__hotpatch_running_copy.{index}"),
            from_anchor: host.offsets[mangled.as_str()] as i64 - anchor_offset as i64,
        })
        .collect();
    let path = work_dir.join("patch.running-copies.o");
    std::fs::write(&path, stubs::stub_object(anchor, &stubs)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Bindings { stubs: Some(path) })
}

/// Turns the definitions at `entries` (file positions of symbol table entries) into undefined
/// references. The object may be a hard link into rustc's incremental cache: a new file replaces
/// it instead of writing through the link.
fn undefine_symbols(path: &Path, entries: &[usize]) -> anyhow::Result<()> {
    let mut bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    for &at in entries {
        // st_shndx = SHN_UNDEF, st_value = 0, st_size = 0; the name, type and binding stay.
        bytes[at + 6..at + 24].fill(0);
    }
    let rewritten = path.with_extension("bound");
    std::fs::write(&rewritten, &bytes)
        .with_context(|| format!("writing {}", rewritten.display()))?;
    std::fs::rename(&rewritten, path).with_context(|| format!("replacing {}", path.display()))
}

#[cfg(test)]
mod tests;
