//! Redirecting a patch's references to the host's private statics.
//!
//! A private static of the rebuilt crate is a local symbol: the patch library gets its own copy,
//! and the dynamic loader cannot bind it to the host's. At low optimisation levels rustc reaches a
//! static only by taking its address, `lea X(%rip), %reg`. Turning that instruction into
//! `mov X(%rip), %reg` makes it load an address from the patch's copy of `X` instead, so the
//! patch's copy becomes a cell: after loading the library, the runtime writes the host's address of
//! `X` into it (the host's module base plus `X`'s offset, found through the build id), and every
//! access lands in the host's static. The patch stays independent of load addresses.
//!
//! A static reached any other way (optimised code reading it directly, thread-locals, a pointer to
//! it in data) cannot be redirected; a patch whose live code reaches one is refused, naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context as _;
use object::{
    Object as _, ObjectSection as _, ObjectSymbol as _, RelocationFlags, RelocationTarget,
    SectionKind,
};

use crate::analysis::{is_own_copy, private_static_of, HostLocalData};
use crate::elf::{self, set_rela_kind, Elf, Rela};

const R_X86_64_PC32: u32 = 2;
/// A cell holds one address.
const CELL_SIZE: u64 = 8;

/// What redirection did to the objects of a patch.
#[derive(Debug, Default)]
pub struct Redirections {
    /// Mangled names of the host statics every code reference of which now goes through a cell.
    pub redirected: BTreeSet<String>,
    /// Host statics that some reference reaches in a way that cannot be redirected, with why.
    pub unredirectable: BTreeMap<String, String>,
    /// Cells that hold the address of the host static of the same name.
    pub address_cells: BTreeSet<String>,
    /// Cells through which thread-locals are reached: they hold the executable's TLS module id.
    pub thread_local_cells: BTreeSet<String>,
}

/// The names of the symbols the objects refer to without defining them there.
pub fn undefined_symbols(objects: &[impl AsRef<Path>]) -> anyhow::Result<BTreeSet<String>> {
    let mut undefined = BTreeSet::new();
    for path in objects {
        let path = path.as_ref();
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let file =
            object::File::parse(&*data).with_context(|| format!("parsing {}", path.display()))?;
        undefined.extend(
            file.symbols()
                .filter(|symbol| symbol.is_undefined())
                .filter_map(|symbol| symbol.name().ok().map(str::to_owned)),
        );
    }
    Ok(undefined)
}

/// Whether an object refers (`undefined`, from [`undefined_symbols`]) to one of `targets` that
/// another object defines. rustc splits a crate into codegen units, and a private static shared
/// by two of them is a hidden symbol one defines and the other refers to. Redirection rewrites a
/// static and its references together inside one object, so such objects must be merged first.
pub fn reaches_across_objects(undefined: &BTreeSet<String>, targets: &HostLocalData) -> bool {
    undefined
        .iter()
        .any(|name| targets.contains_key(name) && !is_own_copy(name))
}

/// Rewrites an object file in place so its code reaches the host's private statics through cells.
/// `targets` are the statics address cells may point at (the host's private statics and those
/// earlier patches introduced); thread-locals are redirected to the host's only.
pub fn redirect_object(
    path: &Path,
    targets: &HostLocalData,
    host_local_data: &HostLocalData,
    out: &mut Redirections,
) -> anyhow::Result<()> {
    let original = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = original.clone();
    let mut byte_edits: Vec<(usize, u8)> = Vec::new();
    let mut grow: BTreeMap<usize, u64> = BTreeMap::new();
    {
        let file =
            object::File::parse(&*bytes).with_context(|| format!("parsing {}", path.display()))?;
        if file.architecture() != object::Architecture::X86_64 {
            anyhow::bail!("redirecting private statics is only implemented for x86-64");
        }
        let mut redirected_here = BTreeSet::new();
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
                let RelocationTarget::Symbol(index) = relocation.target() else {
                    continue;
                };
                let Ok(symbol) = file.symbol_by_index(index) else {
                    continue;
                };
                let Some(target_index) = symbol.section_index() else {
                    continue;
                };
                let Ok(target) = file.section_by_index(target_index) else {
                    continue;
                };
                let Some(mangled) = private_static_of(&target) else {
                    continue;
                };
                if !targets.contains_key(mangled) || is_own_copy(mangled) {
                    continue;
                }
                // Thread-locals are handled by `redirect_thread_locals`.
                if matches!(
                    target.kind(),
                    SectionKind::Tls | SectionKind::UninitializedTls
                ) {
                    continue;
                }
                let r_type = match relocation.flags() {
                    RelocationFlags::Elf { r_type } => r_type,
                    _ => 0,
                };
                let at = section_start.map(|start| start + offset as usize);
                let lea = at.filter(|&at| {
                    at >= 3
                        && matches!(bytes[at - 3], 0x48 | 0x4c)
                        && bytes[at - 2] == 0x8d
                        && bytes[at - 1] & 0xc7 == 0x05
                });
                let points_at_start = symbol.address() == 0 && relocation.addend() == -4;
                match lea {
                    Some(at) if is_code && r_type == R_X86_64_PC32 && points_at_start => {
                        byte_edits.push((at - 2, 0x8b));
                        redirected_here.insert((mangled.to_owned(), target_index.0));
                    }
                    _ => {
                        let why = if is_code {
                            "the optimised code reads it directly"
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
        for (mangled, index) in redirected_here {
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
    }
    for (at, byte) in byte_edits {
        bytes[at] = byte;
    }
    for (index, size) in grow {
        grow_nobits_section(&mut bytes, index, size)?;
    }
    redirect_thread_locals(&mut bytes, host_local_data, out)?;
    if bytes == original {
        return Ok(());
    }
    // rustc hard-links the objects of codegen units it reuses from its incremental cache: writing
    // through the link would edit the cache, and the next build would redirect twice. A new file
    // replaces the link instead.
    let rewritten = path.with_extension("redirected");
    std::fs::write(&rewritten, bytes)
        .with_context(|| format!("writing {}", rewritten.display()))?;
    std::fs::rename(&rewritten, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// Sets the size (and at least 8-byte alignment) of a `.bss` section in an ELF64 object in place.
fn grow_nobits_section(bytes: &mut [u8], index: usize, size: u64) -> anyhow::Result<()> {
    let read_u64 = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let read_u16 = |b: &[u8], at: usize| u16::from_le_bytes(b[at..at + 2].try_into().unwrap());
    let section_headers = read_u64(bytes, 0x28) as usize;
    let entry_size = read_u16(bytes, 0x3a) as usize;
    let header = section_headers + index * entry_size;
    anyhow::ensure!(
        header + 0x40 <= bytes.len(),
        "section header {index} is out of the file"
    );
    let kind = u32::from_le_bytes(bytes[header + 4..header + 8].try_into().unwrap());
    anyhow::ensure!(
        kind == elf::SHT_NOBITS,
        "section {index} is not a .bss section"
    );
    bytes[header + 0x20..header + 0x28].copy_from_slice(&size.to_le_bytes());
    let align = read_u64(bytes, header + 0x30).max(CELL_SIZE);
    bytes[header + 0x30..header + 0x38].copy_from_slice(&align.to_le_bytes());
    Ok(())
}

/// Where each of `statics` lies in a linked library, for the ones that are ordinary data (not
/// thread-locals): `(mangled name, offset from the library's base)`.
pub fn data_offsets<'a>(
    library: &Path,
    statics: impl Iterator<Item = &'a String>,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let statics: BTreeSet<&String> = statics.collect();
    let data = std::fs::read(library).with_context(|| format!("reading {}", library.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing {}", library.display()))?;
    Ok(file
        .symbols()
        .filter(|symbol| symbol.is_definition() && symbol.kind() == object::SymbolKind::Data)
        .filter_map(|symbol| {
            let name = symbol.name().ok()?.to_owned();
            statics.contains(&name).then(|| (name, symbol.address()))
        })
        .collect())
}

/// Where each cell lies in the linked library: `(mangled name, offset in the library)`.
pub fn cell_offsets<'a>(
    library: &Path,
    statics: impl Iterator<Item = &'a String> + Clone,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let statics: BTreeSet<&String> = statics.collect();
    let data = std::fs::read(library).with_context(|| format!("reading {}", library.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing {}", library.display()))?;
    let mut out = BTreeMap::new();
    for symbol in file.symbols() {
        if let Ok(name) = symbol.name() {
            if statics.contains(&name.to_owned()) && symbol.is_definition() {
                out.insert(name.to_owned(), symbol.address());
            }
        }
    }
    for name in &statics {
        anyhow::ensure!(
            out.contains_key(*name),
            "the linked patch lost the symbol of `{}`",
            rustc_demangle::demangle(name)
        );
    }
    Ok(out)
}

const R_X86_64_NONE: u32 = 0;
const R_X86_64_DTPOFF64: u32 = 17;
const R_X86_64_TLSGD: u32 = 19;
const R_X86_64_TLSLD: u32 = 20;
const R_X86_64_DTPOFF32: u32 = 21;
const R_X86_64_GOTTPOFF: u32 = 22;
const R_X86_64_TPOFF32: u32 = 23;
/// A cell for a thread-local holds a `tls_index`: the module id and an offset.
const TLS_CELL_SIZE: u64 = 16;

/// Redirects local-dynamic accesses to the host's private thread-locals.
///
/// Such an access is `lea X@tlsld(%rip), %rdi; call __tls_get_addr` (the base of the module's
/// thread-local block) then `X@dtpoff` added to it. The first relocation is turned into a plain
/// PC-relative reference to the patch's copy of `X`, made an ordinary 16-byte cell that the
/// runtime fills with the executable's TLS module id and offset 0; each `X@dtpoff` is replaced by
/// the offset of the host's `X` in the executable's block. Any other access model, or a function
/// that mixes host and new thread-locals on one base, cannot be redirected.
fn redirect_thread_locals(
    bytes: &mut [u8],
    host_local_data: &HostLocalData,
    out: &mut Redirections,
) -> anyhow::Result<()> {
    struct Plan {
        names: BTreeSet<String>,
        to_pc32: Vec<Rela>,
        dtpoff: Vec<(Rela, usize, i64)>,
        cells: BTreeSet<usize>,
    }
    let elf = Elf::parse(bytes)?;
    let host_name = |symbol: &elf::Symbol| -> Option<String> {
        let name = elf.static_name(symbol)?;
        (host_local_data.contains_key(&name) && !is_own_copy(&name)).then_some(name)
    };
    let mut plans = Vec::new();
    let mut bad: BTreeMap<String, &str> = BTreeMap::new();
    for rela_section in elf.sections.iter().filter(|s| s.kind == elf::SHT_RELA) {
        let Some(target) = elf.sections.get(rela_section.info as usize) else {
            continue;
        };
        if target.flags & elf::SHF_EXECINSTR == 0 {
            continue;
        }
        let tls: Vec<(Rela, Option<String>)> = elf
            .relas(bytes, rela_section)
            .into_iter()
            .filter(|r| {
                matches!(
                    r.kind,
                    R_X86_64_TLSGD
                        | R_X86_64_TLSLD
                        | R_X86_64_DTPOFF32
                        | R_X86_64_GOTTPOFF
                        | R_X86_64_TPOFF32
                )
            })
            .map(|r| {
                let name = elf.symbols.get(r.symbol as usize).and_then(host_name);
                (r, name)
            })
            .collect();
        if tls.iter().all(|(_, name)| name.is_none()) {
            continue;
        }
        let names: BTreeSet<String> = tls.iter().filter_map(|(_, n)| n.clone()).collect();
        let mixed = tls.iter().any(|(_, name)| name.is_none());
        let other_model = tls
            .iter()
            .any(|(r, _)| !matches!(r.kind, R_X86_64_TLSLD | R_X86_64_DTPOFF32));
        if mixed || other_model {
            let why = if mixed {
                "it shares a thread-local base with a thread-local the patch adds"
            } else {
                "it is reached with a thread-local access model that cannot be redirected"
            };
            for name in names {
                bad.entry(name).or_insert(why);
            }
            continue;
        }
        let mut plan = Plan {
            names,
            to_pc32: Vec::new(),
            dtpoff: Vec::new(),
            cells: BTreeSet::new(),
        };
        for (rela, name) in tls {
            let name = name.expect("every access here is to a host thread-local");
            if rela.kind == R_X86_64_TLSLD {
                plan.to_pc32.push(rela);
                plan.cells.insert(rela.symbol as usize);
            } else {
                let at = target.offset as usize + rela.offset as usize;
                let value = host_local_data[&name] as i64 + rela.addend;
                plan.dtpoff.push((rela, at, value));
            }
        }
        plans.push(plan);
    }
    // A cell must be a thread-local of its own that can hold a `tls_index`.
    for plan in &plans {
        for &cell in &plan.cells {
            let symbol = &elf.symbols[cell];
            let section = &elf.sections[usize::from(symbol.section)];
            let fits = section.kind == elf::SHT_NOBITS || section.size >= TLS_CELL_SIZE;
            if section.flags & elf::SHF_TLS == 0 || !fits {
                for name in &plan.names {
                    bad.entry(name.clone())
                        .or_insert("its thread-local block cannot hold a redirect");
                }
            }
        }
    }
    // Drop every plan touching a thread-local that cannot be redirected everywhere.
    loop {
        let before = bad.len();
        for plan in &plans {
            if plan.names.iter().any(|name| bad.contains_key(name)) {
                for name in &plan.names {
                    bad.entry(name.clone())
                        .or_insert("another access to it cannot be redirected");
                }
            }
        }
        if bad.len() == before {
            break;
        }
    }
    plans.retain(|plan| !plan.names.iter().any(|name| bad.contains_key(name)));
    for (name, why) in bad {
        out.unredirectable
            .entry(name)
            .or_insert_with(|| why.to_owned());
    }

    let converted: BTreeSet<usize> = plans
        .iter()
        .flat_map(|plan| plan.cells.iter())
        .map(|&cell| usize::from(elf.symbols[cell].section))
        .collect();
    for plan in &plans {
        for rela in &plan.to_pc32 {
            set_rela_kind(bytes, rela, R_X86_64_PC32);
        }
        for (rela, at, value) in &plan.dtpoff {
            set_rela_kind(bytes, rela, R_X86_64_NONE);
            let value = i32::try_from(*value).context("thread-local offset out of range")?;
            bytes[*at..*at + 4].copy_from_slice(&value.to_le_bytes());
        }
        for &cell in &plan.cells {
            out.thread_local_cells
                .insert(elf.symbols[cell].name.clone());
        }
        out.redirected.extend(plan.names.iter().cloned());
    }
    for &index in &converted {
        let section = &elf.sections[index];
        let at = section.header_at;
        let flags = section.flags & !elf::SHF_TLS;
        bytes[at + 8..at + 16].copy_from_slice(&flags.to_le_bytes());
        // The linker places sections by name: `.tbss.X` would still land in the thread-local
        // template. Dropping the leading dot (`tbss.X`) makes it ordinary writable data.
        let name = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes")) + 1;
        bytes[at..at + 4].copy_from_slice(&name.to_le_bytes());
        if section.kind == elf::SHT_NOBITS && section.size < TLS_CELL_SIZE {
            bytes[at + 0x20..at + 0x28].copy_from_slice(&TLS_CELL_SIZE.to_le_bytes());
        }
        let align = section.align.max(8);
        bytes[at + 0x30..at + 0x38].copy_from_slice(&align.to_le_bytes());
    }
    // Its symbols become ordinary data, and nothing may still treat them as thread-locals.
    for symbol in &elf.symbols {
        if converted.contains(&usize::from(symbol.section)) && symbol.kind == elf::STT_TLS {
            let info = bytes[symbol.entry_at + 4];
            bytes[symbol.entry_at + 4] = (info & 0xf0) | elf::STT_OBJECT;
        }
    }
    for rela_section in elf.sections.iter().filter(|s| s.kind == elf::SHT_RELA) {
        for rela in elf.relas(bytes, rela_section) {
            let in_converted = elf
                .symbols
                .get(rela.symbol as usize)
                .is_some_and(|s| converted.contains(&usize::from(s.section)));
            if in_converted && matches!(rela.kind, R_X86_64_DTPOFF32 | R_X86_64_DTPOFF64) {
                set_rela_kind(bytes, &rela, R_X86_64_NONE);
            }
        }
    }
    Ok(())
}
