//! Which functions a patch changes, decided from the compiler's output: each function's machine
//! code and what its relocations point at (the names of other functions and statics, the bytes of
//! the constants it uses), compared with the same crate's previous object code.
//!
//! Names that differ between builds without meaning anything (`anon.<hash>.N` constants,
//! `.llvm.N` suffixes) are not compared; the constants' contents are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use anyhow::Context as _;

pub use super::lists::{
    changed_functions, classify_changes, differing_functions, resigned_functions, Fingerprints,
};
use hotreload_runtime::wire::patch_file::sha256_hex;
use object::read::archive::ArchiveFile;
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget, SectionKind};

/// The fingerprints of the objects each directory held at the last call, by file identity:
/// rustc hard-links the objects of the codegen units an edit left alone from its incremental
/// cache, so with one unit per module most objects of a patch build are the same files as last
/// time, and only the units the edit re-emitted are read.
static LAST_OBJECTS: Mutex<BTreeMap<PathBuf, ObjectFingerprints>> = Mutex::new(BTreeMap::new());

/// The fingerprints of each object file of one directory.
type ObjectFingerprints = BTreeMap<FileIdentity, Fingerprints>;

/// The fingerprint of every function defined in the objects (`.o` files, or `.rlib` archives).
pub fn function_fingerprints(paths: &[PathBuf]) -> anyhow::Result<Fingerprints> {
    let directory = paths
        .first()
        .and_then(|path| path.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut remembered = LAST_OBJECTS.lock().unwrap_or_else(PoisonError::into_inner);
    let last = remembered.entry(directory).or_default();
    let mut seen = ObjectFingerprints::new();
    let mut out = Fingerprints::new();
    for path in paths {
        let identity = file_identity(path);
        let known = identity.as_ref().and_then(|id| last.remove(id));
        let fingerprints = match known {
            Some(fingerprints) => fingerprints,
            None => fingerprints_of_file(path)?,
        };
        out.extend(fingerprints.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(identity) = identity {
            seen.insert(identity, fingerprints);
        }
    }
    *last = seen;
    Ok(out)
}

/// A file's device, inode, length and modification time: equal for a hard link to the same
/// unchanged file. `None` where the platform has no inodes (nothing is then remembered).
pub type FileIdentity = (u64, u64, u64, i64, i64);

#[cfg(unix)]
pub fn file_identity(path: &Path) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some((
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
    ))
}

#[cfg(not(unix))]
pub fn file_identity(_path: &Path) -> Option<FileIdentity> {
    None
}

fn fingerprints_of_file(path: &Path) -> anyhow::Result<Fingerprints> {
    let mut out = Fingerprints::new();
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|ext| ext == "rlib") {
        let archive =
            ArchiveFile::parse(&*data).with_context(|| format!("parsing {}", path.display()))?;
        for member in archive.members() {
            let member = member?;
            if member.name().ends_with(b".o") {
                add_object(member.data(&*data)?, &mut out);
            }
        }
    } else {
        add_object(&data, &mut out);
    }
    Ok(out)
}

fn add_object(data: &[u8], out: &mut Fingerprints) {
    let Ok(file) = object::File::parse(data) else {
        return;
    };
    for symbol in file.symbols() {
        if symbol.kind() != object::SymbolKind::Text || !symbol.is_definition() {
            continue;
        }
        let (Ok(name), Some(index)) = (symbol.name(), symbol.section_index()) else {
            continue;
        };
        let Ok(section) = file.section_by_index(index) else {
            continue;
        };
        // rustc puts every function in its own section.
        let Ok(code) = section.data() else { continue };
        let mut text = sha256_hex(code);
        append_relocations(&file, &section, 0..code.len() as u64, 0, &mut text);
        out.insert(normalise(name), sha256_hex(text.as_bytes()));
    }
}

/// How deep constants that point at other constants are followed.
const CONSTANT_DEPTH: usize = 3;

/// Appends each relocation of `section` inside `range` (its offset from the range's start, kind
/// and target) to `text`.
fn append_relocations(
    file: &object::File,
    section: &object::Section,
    range: std::ops::Range<u64>,
    depth: usize,
    text: &mut String,
) {
    for (offset, relocation) in section.relocations() {
        if !range.contains(&offset) {
            continue;
        }
        let target = match relocation.target() {
            RelocationTarget::Symbol(index) => file
                .symbol_by_index(index)
                .ok()
                .map(|symbol| target_key(file, &symbol, &relocation, depth))
                .unwrap_or_default(),
            _ => String::new(),
        };
        text.push_str(&format!(
            "|{}:{:?}:{target}",
            offset - range.start,
            relocation.flags()
        ));
    }
}

/// What a relocation points at, stable across builds and across how the crate was split into
/// codegen units: a global's name (and the addend), or a local constant's contents. A string in
/// a merged string section is the string itself (its offset there depends on the other strings
/// of the unit); a constant that points at others (`&str`s, panic locations, vtables) is its
/// bytes and what it points at.
fn target_key(
    file: &object::File,
    symbol: &object::Symbol,
    relocation: &object::Relocation,
    depth: usize,
) -> String {
    let addend = relocation.addend();
    let local_data = symbol.is_local()
        && matches!(
            symbol.kind(),
            object::SymbolKind::Data | object::SymbolKind::Section | object::SymbolKind::Unknown
        );
    let section = symbol
        .section_index()
        .and_then(|index| file.section_by_index(index).ok());
    let (Some(section), true) = (section, local_data) else {
        return format!("{}{addend:+}", normalise(symbol.name().unwrap_or_default()));
    };
    // Code is the name of the function its section holds (rustc gives each function its own
    // section, named after it), as a call to that function's global symbol is: whether a callee
    // sits in the caller's codegen unit depends on how the crate was split, not on the code.
    if section.kind() == SectionKind::Text {
        let name = item_of_section(section.name().unwrap_or_default());
        return format!("{}{addend:+}", normalise(name));
    }
    let writable_static = matches!(
        section.kind(),
        SectionKind::Data | SectionKind::UninitializedData
    ) && !section
        .name()
        .is_ok_and(|name| name.starts_with(".data.rel.ro"));
    let Ok(data) = section.data() else {
        return normalise(section.name().unwrap_or_default());
    };
    let lands = landing(symbol, relocation);
    let strings = matches!(
        section.flags(),
        object::SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_STRINGS) != 0
    );
    // A string is its text at any depth: its offset in a merged section depends on the others.
    if strings {
        return format!(
            "str:{}",
            sha256_hex(&without_line_numbers(string_at(data, lands)))
        );
    }
    // A constant of a merged constant pool (LLVM's `.rodata.cst8` for floats) is its own bytes:
    // its offset there depends on the other constants of the unit, which any edit may change.
    if let Some(size) = pooled_constant_size(&section) {
        let at = lands.max(0) as usize;
        let bytes = data.get(at..at + size).unwrap_or_default();
        return format!("pooled:{}", sha256_hex(bytes));
    }
    if writable_static || depth >= CONSTANT_DEPTH {
        let name = item_of_section(section.name().unwrap_or_default());
        return format!("{}{addend:+}", normalise(name));
    }
    // One constant: the symbol's extent, or the whole section (rustc gives each its own).
    let (start, end) = if symbol.kind() == object::SymbolKind::Section || symbol.size() == 0 {
        (0, data.len() as u64)
    } else {
        let start = symbol.address().min(data.len() as u64);
        (start, (start + symbol.size()).min(data.len() as u64))
    };
    let bytes = &data[start as usize..end as usize];
    // A constant that names a source file (a panic's `Location`, a tracing callsite's metadata)
    // is compared by what it points at, not by its numbers: they are lines and columns, which
    // move when code above is edited without changing what this function does.
    let contents = if names_a_source_file(file, &section, start..end) {
        format!("at-source:{}", bytes.len())
    } else {
        sha256_hex(&without_line_numbers(bytes))
    };
    let mut text = format!("const:{contents}@{}", lands - start as i64);
    append_relocations(file, &section, start..end, depth + 1, &mut text);
    text
}

/// The item a section holds, by the name rustc gives each function's and static's own section
/// (`.text.<name>`, `.text.unlikely.<name>` for a cold function, `.bss.<name>`, …), as a reference
/// to its global symbol names it; another section's name as it is.
fn item_of_section(section: &str) -> &str {
    const PREFIXES: [&str; 12] = [
        ".text.unlikely.",
        ".text.hot.",
        ".text.startup.",
        ".text.",
        ".data.rel.ro.local.",
        ".data.rel.ro.",
        ".data.rel.local.",
        ".data.rel.",
        ".data.",
        ".bss.",
        ".tdata.",
        ".tbss.",
    ];
    PREFIXES
        .iter()
        .find_map(|prefix| section.strip_prefix(prefix))
        .unwrap_or(section)
}

/// The size of each constant of `section` when it is a pool of constants the linker may merge
/// (`SHF_MERGE`, not strings, named `.rodata.cst<size>` by LLVM).
fn pooled_constant_size(section: &object::Section) -> Option<usize> {
    let object::SectionFlags::Elf { sh_flags } = section.flags() else {
        return None;
    };
    let merge = sh_flags & u64::from(object::elf::SHF_MERGE) != 0;
    if !merge || sh_flags & u64::from(object::elf::SHF_STRINGS) != 0 {
        return None;
    }
    let name = section.name().ok()?;
    let size = name.rsplit_once(".cst")?.1.parse().ok()?;
    (size > 0).then_some(size)
}

/// Where in its target's section a relocation lands: a code reference is relative to the end of
/// its 4-byte field.
fn landing(symbol: &object::Symbol, relocation: &object::Relocation) -> i64 {
    let pc_relative = matches!(
        relocation.kind(),
        object::RelocationKind::Relative
            | object::RelocationKind::PltRelative
            | object::RelocationKind::GotRelative
    );
    let base = if symbol.kind() == object::SymbolKind::Section {
        0
    } else {
        symbol.address() as i64
    };
    base + relocation.addend() + if pc_relative { 4 } else { 0 }
}

/// The NUL-terminated string at `at` of a string section.
fn string_at(data: &[u8], at: i64) -> &[u8] {
    let at = (at.max(0) as usize).min(data.len());
    let end = data[at..]
        .iter()
        .position(|&b| b == 0)
        .map_or(data.len(), |nul| at + nul);
    &data[at..end]
}

/// `text` without the numbers of source positions (`src/lib.rs:68:5` becomes `src/lib.rs::`):
/// tracing names each event after its file and line.
fn without_line_numbers(text: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    const MARK: &[u8] = b".rs:";
    if !text.windows(MARK.len()).any(|w| w == MARK) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        out.push(text[i]);
        if out.ends_with(MARK) {
            i += 1;
            // The line, then an optional `:column`.
            while i < text.len() && (text[i].is_ascii_digit() || text[i] == b':') {
                if text[i] == b':' {
                    out.push(b':');
                }
                i += 1;
            }
            continue;
        }
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// Whether a constant points at the name of a Rust source file (`src/lib.rs`, with or without
/// its NUL).
fn names_a_source_file(
    file: &object::File,
    section: &object::Section,
    range: std::ops::Range<u64>,
) -> bool {
    section.relocations().any(|(offset, relocation)| {
        let (RelocationTarget::Symbol(index), true) =
            (relocation.target(), range.contains(&offset))
        else {
            return false;
        };
        let Ok(symbol) = file.symbol_by_index(index) else {
            return false;
        };
        let target = symbol
            .section_index()
            .and_then(|i| file.section_by_index(i).ok());
        target
            .and_then(|t| t.data().ok())
            .is_some_and(|data| string_at(data, landing(&symbol, &relocation)).ends_with(b".rs"))
    })
}

/// Drops what changes between builds without meaning: `anon.<hash>.N` and `.llvm.N` suffixes.
/// A symbol name without what differs between builds of the same code (`.llvm.N`, `anon.<hash>`).
pub fn normalise(name: &str) -> String {
    let mut name = match name.find(".llvm.") {
        Some(at) => name[..at].to_owned(),
        None => name.to_owned(),
    };
    if let Some(at) = name.find("anon.") {
        let rest = &name[at + 5..];
        let skip = rest.find('.').map(|dot| dot + 1).unwrap_or(0);
        name = format!("{}anon.{}", &name[..at], &rest[skip..]);
    }
    name
}

#[cfg(test)]
mod tests;
