//! In-place edits of an ELF64 relocatable object's bytes, at the positions
//! [`Elf`](crate::object::elf::Elf) recorded: relocation types, symbol types, `.bss` sizes, and
//! sections turned from thread-local into plain data.

use crate::object::elf::{self, Rela, Section, Symbol};

/// The alignment of an address: what a section grown to hold one gets at least.
const ADDRESS_ALIGN: u64 = 8;

/// Rewrites a relocation entry's type in place.
pub fn set_rela_kind(bytes: &mut [u8], rela: &Rela, kind: u32) {
    let info = (u64::from(rela.symbol) << 32) | u64::from(kind);
    bytes[rela.entry_at + 8..rela.entry_at + 16].copy_from_slice(&info.to_le_bytes());
}

/// Sets the size (and at least 8-byte alignment) of a `.bss` section in an ELF64 object in place.
pub fn grow_nobits_section(bytes: &mut [u8], index: usize, size: u64) -> anyhow::Result<()> {
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
    let align = read_u64(bytes, header + 0x30).max(ADDRESS_ALIGN);
    bytes[header + 0x30..header + 0x38].copy_from_slice(&align.to_le_bytes());
    Ok(())
}

/// Sets a symbol table entry's type (`STT_*`) in place, keeping its binding.
pub fn set_symbol_kind(bytes: &mut [u8], symbol: &Symbol, kind: u8) {
    let info = bytes[symbol.entry_at + 4];
    bytes[symbol.entry_at + 4] = (info & 0xf0) | kind;
}

/// Turns a thread-local section (`.tbss.X`, `.tdata.X`) into ordinary writable data of at least
/// `min_size` bytes (when it is `.bss`-like) and 8-byte alignment.
pub fn tls_section_to_data(bytes: &mut [u8], section: &Section, min_size: u64) {
    let at = section.header_at;
    let flags = section.flags & !elf::SHF_TLS;
    bytes[at + 8..at + 16].copy_from_slice(&flags.to_le_bytes());
    // The linker places sections by name: `.tbss.X` would still land in the thread-local
    // template. Dropping the leading dot (`tbss.X`) makes it ordinary writable data.
    let name = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes")) + 1;
    bytes[at..at + 4].copy_from_slice(&name.to_le_bytes());
    if section.kind == elf::SHT_NOBITS && section.size < min_size {
        bytes[at + 0x20..at + 0x28].copy_from_slice(&min_size.to_le_bytes());
    }
    let align = section.align.max(ADDRESS_ALIGN);
    bytes[at + 0x30..at + 0x38].copy_from_slice(&align.to_le_bytes());
}

/// Marks a section `SHF_GNU_RETAIN` in place: `--gc-sections` keeps it whatever reaches it.
pub fn retain_section(bytes: &mut [u8], section: &Section) {
    let at = section.header_at;
    let flags = section.flags | elf::SHF_GNU_RETAIN;
    bytes[at + 8..at + 16].copy_from_slice(&flags.to_le_bytes());
}
