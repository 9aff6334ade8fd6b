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
//!
//! Only the bound functions that code the patch keeps calls by name get a stub, and only the
//! objects holding something the link keeps are linked at all: on `examples/depot` a one-line
//! edit links 26 of 148 objects with 147 stubs (of 6,855 functions bound), which took the link
//! from about 210 ms to 45 ms and the binding from 125 ms to 48 ms.

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
    /// The objects to link: those the linker would keep anything of.
    pub objects: Vec<PathBuf>,
    /// The object defining the stubs, when any function was bound.
    pub stubs: Option<PathBuf>,
}

/// Binds every function of `objects` that may run as the host's copy (see the module docs),
/// rewriting the objects that define them in place and writing the stubs into `work_dir`.
/// `differs` holds the (normalised) names of the functions whose code is not the base's;
/// `exported` says which symbols the library exports or keeps (the link's roots).
pub fn bind_unchanged(
    objects: &[PathBuf],
    differs: &BTreeSet<String>,
    host: &HostFunctions,
    work_dir: &Path,
    exported: impl Fn(&str) -> bool,
) -> anyhow::Result<Bindings> {
    let graph = graph::ObjectGraph::read(objects)?;
    let unbound = || Bindings {
        objects: objects.to_vec(),
        stubs: None,
    };
    let Some((anchor, anchor_offset)) = host.anchor(|name| graph.defines(name)) else {
        return Ok(unbound());
    };
    let bound = graph.bindable(differs, &host.offsets);
    if bound.is_empty() {
        return Ok(unbound());
    }
    let needed = graph.needed(&bound, exported);
    for (object, symbols) in graph.definitions_of(&needed.stubs) {
        if needed.objects.contains(&object) {
            undefine_symbols(&objects[object], &symbols)?;
        }
    }
    let stubs: Vec<stubs::Stub> = needed
        .stubs
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
    Ok(Bindings {
        objects: needed
            .objects
            .iter()
            .map(|&index| objects[index].clone())
            .collect(),
        stubs: Some(path),
    })
}

/// Reads the facts of `objects` ahead of the first patch: a patch's objects that rustc reused
/// from its incremental cache are the same files, whose facts are then remembered.
pub fn read_ahead(objects: &[PathBuf]) -> anyhow::Result<()> {
    graph::ObjectGraph::read(objects).map(drop)
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
