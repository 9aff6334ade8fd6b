//! A minimal view of an ELF64 relocatable object for in-place edits: section headers, symbols and
//! relocation entries, each with its position in the file so a field can be rewritten where it is.

use anyhow::{ensure, Context as _};

pub const SHT_SYMTAB: u32 = 2;
pub const SHT_RELA: u32 = 4;
pub const SHT_NOBITS: u32 = 8;
pub const SHF_EXECINSTR: u64 = 0x4;
pub const SHF_TLS: u64 = 0x400;
/// The linker keeps the section through `--gc-sections`.
pub const SHF_GNU_RETAIN: u64 = 0x20_0000;
pub const STT_OBJECT: u8 = 1;
pub const STT_SECTION: u8 = 3;
pub const STT_TLS: u8 = 6;

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes[at..at + 2].try_into().expect("two bytes"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
}

/// A section header and where it sits in the file.
#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub kind: u32,
    pub flags: u64,
    pub offset: u64,
    pub size: u64,
    pub link: u32,
    pub info: u32,
    pub align: u64,
    /// File position of the header itself.
    pub header_at: usize,
}

/// A symbol table entry and where it sits in the file.
#[derive(Debug, Clone)]
pub struct Symbol {
    pub name: String,
    pub kind: u8,
    pub section: u16,
    /// File position of the entry.
    pub entry_at: usize,
}

/// A relocation entry (with addend) and where it sits in the file.
#[derive(Debug, Clone, Copy)]
pub struct Rela {
    pub offset: u64,
    pub symbol: u32,
    pub kind: u32,
    pub addend: i64,
    /// File position of the entry.
    pub entry_at: usize,
}

/// The parsed headers of an ELF64 little-endian relocatable object.
pub struct Elf {
    pub sections: Vec<Section>,
    pub symbols: Vec<Symbol>,
}

impl Elf {
    pub fn parse(bytes: &[u8]) -> anyhow::Result<Self> {
        ensure!(
            bytes.len() > 0x40 && &bytes[..4] == b"\x7fELF" && bytes[4] == 2 && bytes[5] == 1,
            "not a 64-bit little-endian ELF object"
        );
        let headers = u64_at(bytes, 0x28) as usize;
        let entry_size = usize::from(u16_at(bytes, 0x3a));
        let count = usize::from(u16_at(bytes, 0x3c));
        let names_index = usize::from(u16_at(bytes, 0x3e));
        ensure!(
            entry_size >= 0x40 && headers + count * entry_size <= bytes.len(),
            "section headers out of the file"
        );
        let mut sections: Vec<Section> = (0..count)
            .map(|index| {
                let at = headers + index * entry_size;
                Section {
                    name: String::new(),
                    kind: u32_at(bytes, at + 4),
                    flags: u64_at(bytes, at + 8),
                    offset: u64_at(bytes, at + 0x18),
                    size: u64_at(bytes, at + 0x20),
                    link: u32_at(bytes, at + 0x28),
                    info: u32_at(bytes, at + 0x2c),
                    align: u64_at(bytes, at + 0x30),
                    header_at: at,
                }
            })
            .collect();
        let names = sections
            .get(names_index)
            .context("no section name table")?
            .clone();
        for section in &mut sections {
            section.name = string_at(bytes, &names, u32_at(bytes, section.header_at))?;
        }
        let mut symbols = Vec::new();
        if let Some(symtab) = sections.iter().find(|s| s.kind == SHT_SYMTAB) {
            let strings = sections
                .get(symtab.link as usize)
                .context("symbol table without strings")?;
            let start = symtab.offset as usize;
            ensure!(
                start + symtab.size as usize <= bytes.len(),
                "symbol table out of the file"
            );
            for index in 0..symtab.size as usize / 24 {
                let at = start + index * 24;
                symbols.push(Symbol {
                    name: string_at(bytes, strings, u32_at(bytes, at))?,
                    kind: bytes[at + 4] & 0xf,
                    section: u16_at(bytes, at + 6),
                    entry_at: at,
                });
            }
        }
        Ok(Elf { sections, symbols })
    }

    /// The relocation entries of a `SHT_RELA` section.
    pub fn relas(&self, bytes: &[u8], rela: &Section) -> Vec<Rela> {
        let start = rela.offset as usize;
        (0..rela.size as usize / 24)
            .map(|index| {
                let at = start + index * 24;
                let info = u64_at(bytes, at + 8);
                Rela {
                    offset: u64_at(bytes, at),
                    symbol: (info >> 32) as u32,
                    kind: info as u32,
                    addend: u64_at(bytes, at + 16) as i64,
                    entry_at: at,
                }
            })
            .collect()
    }

    /// The name of the static a symbol stands for: its own, or for a section symbol, the
    /// static its section holds (`.tbss.NAME`).
    pub fn static_name(&self, symbol: &Symbol) -> Option<String> {
        if symbol.kind != STT_SECTION {
            return Some(symbol.name.clone());
        }
        let section = self.sections.get(usize::from(symbol.section))?;
        [".tbss.", ".tdata.", ".bss.", ".data."]
            .iter()
            .find_map(|prefix| section.name.strip_prefix(prefix))
            .map(str::to_owned)
    }
}

fn string_at(bytes: &[u8], table: &Section, offset: u32) -> anyhow::Result<String> {
    let start = table.offset as usize + offset as usize;
    let end = (table.offset + table.size) as usize;
    ensure!(
        start <= end && end <= bytes.len(),
        "string out of its table"
    );
    let raw = &bytes[start..end];
    let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    Ok(String::from_utf8_lossy(&raw[..len]).into_owned())
}
