//! Redirecting code references to the host's private (not thread-local) statics: each
//! `lea X(%rip), %reg` becomes `mov X(%rip), %reg`, and the patch's copy of `X` becomes a cell
//! the runtime fills with the host's address of `X`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use object::{
    Object as _, ObjectSection as _, ObjectSymbol as _, Relocation, RelocationFlags,
    RelocationTarget, SectionKind,
};

use super::{is_own_copy, DataPointer, Redirections};
use crate::host::HostLocalData;
use crate::object::edit::grow_nobits_section;
use crate::object::read::private_static_of;
use crate::object::x86_64::{is_rip_relative_lea, MOV_LOAD_OPCODE, R_X86_64_64, R_X86_64_PC32};

/// A cell holds one address.
const CELL_SIZE: u64 = 8;

/// The edits that redirect one object's references to host statics.
#[derive(Default)]
struct Plan {
    /// Bytes to overwrite: `(position in the file, new byte)`.
    byte_edits: Vec<(usize, u8)>,
    /// The statics whose every reference here was redirected: `(mangled name, section index)`.
    cells: BTreeSet<(String, usize)>,
}

/// Redirects the object's (`bytes`, read from `path`) references to `targets` through cells, in
/// place; records what it did, and what it could not redirect, in `out`.
pub(super) fn redirect(
    path: &std::path::Path,
    bytes: &mut [u8],
    targets: &HostLocalData,
    out: &mut Redirections,
) -> anyhow::Result<()> {
    let (byte_edits, grow) = {
        let file =
            object::File::parse(&*bytes).with_context(|| format!("parsing {}", path.display()))?;
        if file.architecture() != object::Architecture::X86_64 {
            anyhow::bail!("redirecting private statics is only implemented for x86-64");
        }
        let plan = plan(&file, bytes, targets, out);
        for pointer in &out.data_pointers {
            out.redirected.insert(pointer.target.clone());
        }
        let grow = make_cells(&file, plan.cells, out)?;
        (plan.byte_edits, grow)
    };
    for (at, byte) in byte_edits {
        bytes[at] = byte;
    }
    for (index, size) in grow {
        grow_nobits_section(bytes, index, size)?;
    }
    Ok(())
}

/// Finds every reference to one of `targets` outside debug information: a `lea` in code that
/// takes the static's address is planned to become a load from the cell; any other reference
/// makes the static unredirectable.
fn plan(
    file: &object::File,
    bytes: &[u8],
    targets: &HostLocalData,
    out: &mut Redirections,
) -> Plan {
    let mut plan = Plan::default();
    for section in file.sections() {
        // Debug information is not loaded; what it says of the static's address is moot.
        if matches!(
            section.kind(),
            SectionKind::Debug | SectionKind::DebugString
        ) || section.name().is_ok_and(|name| name.starts_with(".debug"))
        {
            continue;
        }
        let is_code = section.kind() == SectionKind::Text;
        let section_start = section.file_range().map(|(start, _)| start as usize);
        for (offset, relocation) in section.relocations() {
            let Some((mangled, index, points_at_start)) =
                host_static_reached(file, &relocation, targets)
            else {
                continue;
            };
            let r_type = match relocation.flags() {
                RelocationFlags::Elf { r_type } => r_type,
                _ => 0,
            };
            let at = section_start.map(|start| start + offset as usize);
            let lea = at.filter(|&at| is_rip_relative_lea(bytes, at));
            let referrer = (!is_code && r_type == R_X86_64_64)
                .then(|| named_data(file, &section, targets))
                .flatten();
            match (lea, referrer) {
                (Some(at), _) if is_code && r_type == R_X86_64_PC32 && points_at_start => {
                    plan.byte_edits.push((at - 2, MOV_LOAD_OPCODE));
                    plan.cells.insert((mangled.to_owned(), index));
                }
                (_, Some(Referrer::Shared)) => {}
                (_, Some(Referrer::Own(referrer))) => out.data_pointers.push(DataPointer {
                    referrer: referrer.to_owned(),
                    offset,
                    target: mangled.to_owned(),
                    addend: relocation.addend(),
                }),
                _ => {
                    let why = if is_code {
                        "its code reads or writes it in place instead of through its address"
                    } else {
                        "a pointer to it is stored in data"
                    };
                    out.unredirectable
                        .entry(mangled.to_owned())
                        .or_insert_with(|| why.to_owned());
                }
            }
        }
    }
    plan
}

/// What holds a pointer to a host static in data.
enum Referrer<'data> {
    /// A static the host shares (one of `targets`): the patch reaches the running copy, which
    /// points at the running target, and its own copy is a cell or unused.
    Shared,
    /// The patch's own static of this (mangled) name, at the start of its section.
    Own(&'data str),
}

/// The static whose section `section` is, if it has a name the linked library keeps (constants
/// without one, `.L…`, are anonymous).
fn named_data<'data>(
    file: &object::File<'data>,
    section: &object::Section<'data, '_>,
    targets: &HostLocalData,
) -> Option<Referrer<'data>> {
    let name = file
        .symbols()
        .filter(|symbol| symbol.section_index() == Some(section.index()))
        .filter(|symbol| symbol.kind() == object::SymbolKind::Data && symbol.address() == 0)
        .find_map(|symbol| symbol.name().ok().filter(|name| !name.starts_with(".L")))?;
    // A read-only static is never redirected, and the patch's own copies stay its own: those
    // hold the pointers live code follows.
    let shared =
        targets.contains_key(name) && private_static_of(section).is_some() && !is_own_copy(name);
    Some(if shared {
        Referrer::Shared
    } else {
        Referrer::Own(name)
    })
}

/// The static of `targets` (not a thread-local: those are redirected elsewhere) a relocation
/// points at: its mangled name, the index of its section, and whether the relocation points at
/// its start.
fn host_static_reached<'data>(
    file: &object::File<'data>,
    relocation: &Relocation,
    targets: &HostLocalData,
) -> Option<(&'data str, usize, bool)> {
    let RelocationTarget::Symbol(index) = relocation.target() else {
        return None;
    };
    let symbol = file.symbol_by_index(index).ok()?;
    let target_index = symbol.section_index()?;
    let target = file.section_by_index(target_index).ok()?;
    let mangled = private_static_of(&target)?;
    if !targets.contains_key(mangled) || is_own_copy(mangled) {
        return None;
    }
    if matches!(
        target.kind(),
        SectionKind::Tls | SectionKind::UninitializedTls
    ) {
        return None;
    }
    let points_at_start = symbol.address() == 0 && relocation.addend() == -4;
    Some((mangled, target_index.0, points_at_start))
}

/// Makes the patch's copy of each redirected static a cell: one too small to hold an address is
/// grown when it is `.bss` (returned as section index to new size), and otherwise unredirectable.
fn make_cells(
    file: &object::File,
    cells: BTreeSet<(String, usize)>,
    out: &mut Redirections,
) -> anyhow::Result<BTreeMap<usize, u64>> {
    let mut grow = BTreeMap::new();
    for (mangled, index) in cells {
        let section = file.section_by_index(object::SectionIndex(index))?;
        if section.size() < CELL_SIZE {
            if section.kind() == SectionKind::UninitializedData {
                grow.insert(index, CELL_SIZE);
            } else {
                out.unredirectable.entry(mangled).or_insert_with(|| {
                    "it is smaller than an address and initialised to non-zero".to_owned()
                });
                continue;
            }
        }
        out.redirected.insert(mangled.clone());
        out.address_cells.insert(mangled);
    }
    Ok(grow)
}
