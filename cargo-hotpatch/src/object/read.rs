//! Reads of a binary's or object's symbol table and named sections that every stage shares:
//! undefined symbols, where symbols lie, the build id, the `#[hot_state]` records section.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context as _;
use hotreload_runtime::wire::patch_file::hex;
use hotreload_runtime::wire::state_record::{parse_records, StateRecord};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, SectionKind};

/// What the linker needs to know of a patch's objects' symbols, read in one pass.
#[derive(Debug, Default)]
pub struct ObjectSymbols {
    /// The symbols the objects refer to without defining them there.
    pub undefined: BTreeSet<String>,
    /// The data the objects define for every module to share: global, default-visibility
    /// statics and thread-locals (a crate's public ones). The executable's definitions of these
    /// take precedence when a patch library is loaded, so the patch uses the running copies.
    pub shared_data: BTreeSet<String>,
}

/// The [`ObjectSymbols`] of `objects`.
pub fn object_symbols(objects: &[impl AsRef<Path>]) -> anyhow::Result<ObjectSymbols> {
    let mut symbols = ObjectSymbols::default();
    for path in objects {
        let path = path.as_ref();
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let file =
            object::File::parse(&*data).with_context(|| format!("parsing {}", path.display()))?;
        for symbol in file.symbols() {
            let Ok(name) = symbol.name() else { continue };
            if symbol.is_undefined() {
                symbols.undefined.insert(name.to_owned());
            } else if symbol.section_index().is_some()
                && symbol.scope() == object::SymbolScope::Dynamic
                && matches!(
                    symbol.kind(),
                    object::SymbolKind::Data | object::SymbolKind::Tls
                )
            {
                symbols.shared_data.insert(name.to_owned());
            }
        }
    }
    Ok(symbols)
}

/// Where each of `statics` lies in a linked library: `(mangled name, offset)`, the offset from the
/// library's base for ordinary data, in the library's thread-local block for a thread-local.
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
        .filter(|symbol| match symbol.kind() {
            object::SymbolKind::Data => symbol.is_definition(),
            // `object` counts no thread-local as a definition: one in a section is.
            object::SymbolKind::Tls => !symbol.is_undefined(),
            _ => false,
        })
        .filter_map(|symbol| {
            let name = symbol.name().ok()?.to_owned();
            statics.contains(&name).then(|| (name, symbol.address()))
        })
        .collect())
}

/// Where each cell lies in the linked library: `(mangled name, offset in the library)`. A cell
/// the library does not have was dropped by the linker with the code that used it: nothing in the
/// library reaches it, so it needs no address.
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
    Ok(out)
}

/// The GNU build id of an ELF file, hex.
pub fn read_build_id(path: &Path) -> anyhow::Result<String> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing {}", path.display()))?;
    let id = file
        .build_id()
        .with_context(|| format!("reading the build id of {}", path.display()))?
        .with_context(|| {
            format!(
                "{} has no GNU build id; patchable hosts need one (the default on Linux)",
                path.display()
            )
        })?;
    Ok(hex(id))
}

/// The section `#[hot_state]` records go in.
const STATES_SECTION: &str = ".hotreload_states";

/// The state records of the binary or library at `path` (none when it has no state types).
pub fn state_records(path: &Path) -> anyhow::Result<Vec<StateRecord>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing {}", path.display()))?;
    let Some(section) = file.section_by_name(STATES_SECTION) else {
        return Ok(Vec::new());
    };
    let bytes = section
        .uncompressed_data()
        .with_context(|| format!("reading {STATES_SECTION} of {}", path.display()))?;
    Ok(parse_records(&bytes))
}

/// Whether a section can take part in what code reaches at run time: one that is loaded, other
/// than unwind tables (which refer to every function and are referred to by none). Debug
/// information, most of an object's relocations, is not.
pub fn may_be_reached(section: &object::Section<'_, '_>) -> bool {
    let loaded = match section.flags() {
        object::SectionFlags::Elf { sh_flags } => sh_flags & u64::from(object::elf::SHF_ALLOC) != 0,
        _ => section.kind() != SectionKind::Debug,
    };
    loaded
        && !section
            .name()
            .is_ok_and(|name| name.starts_with(".eh_frame"))
}

/// The mangled name of the static a writable data section holds (`.bss.NAME`, `.tdata.NAME`).
pub fn private_static_of<'a>(section: &object::Section<'a, '_>) -> Option<&'a str> {
    let name = section.name().ok()?;
    if name.starts_with(".data.rel.ro") {
        return None;
    }
    let writable = matches!(
        section.kind(),
        SectionKind::Data
            | SectionKind::UninitializedData
            | SectionKind::Tls
            | SectionKind::UninitializedTls
    );
    if !writable {
        return None;
    }
    [".bss.", ".data.", ".tbss.", ".tdata."]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))
}

/// A function a linked binary's symbol table names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSymbol {
    /// The symbol's name as written (mangled, with any `.llvm.N` suffix).
    pub name: String,
    /// Its address: the offset from the module's load base, in a position-independent module.
    pub address: u64,
    /// Its size in bytes (0 when the symbol table does not say).
    pub size: u64,
}

/// Every defined function in the symbol table (`.symtab`) of the binary or library at `path`,
/// local ones included; `None` when it has no symbol table (it was stripped).
pub fn function_symbols(path: &Path) -> anyhow::Result<Option<Vec<FunctionSymbol>>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing {}", path.display()))?;
    if file.symbol_table().is_none() {
        return Ok(None);
    }
    Ok(Some(
        file.symbols()
            .filter(|symbol| symbol.is_definition() && symbol.kind() == object::SymbolKind::Text)
            .filter_map(|symbol| {
                Some(FunctionSymbol {
                    name: symbol.name().ok()?.to_owned(),
                    address: symbol.address(),
                    size: symbol.size(),
                })
            })
            .collect(),
    ))
}
