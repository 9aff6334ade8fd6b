//! The object that defines each bound function again as a jump to the running copy.

use object::write::{Object, Relocation, Symbol, SymbolId, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolKind,
    SymbolScope,
};

use crate::object::x86_64::{R_X86_64_64, R_X86_64_PC32};

/// `jmp *0(%rip)`: the displacement (at offset 2) is relocated to the function's cell; `int3`
/// pads the stub to eight bytes.
const STUB: [u8; 8] = [0xff, 0x25, 0, 0, 0, 0, 0xcc, 0xcc];
/// Where the displacement sits in [`STUB`], and what it is relative to (the next instruction).
const DISPLACEMENT_AT: u64 = 2;
const DISPLACEMENT_ADDEND: i64 = -4;

/// A function bound to its running copy: its mangled name, its cell's name, and the distance from
/// the anchor's running copy to its own.
pub struct Stub {
    pub function: String,
    pub cell: String,
    pub from_anchor: i64,
}

/// An ELF relocatable object defining each function of `stubs` as a jump through its cell, whose
/// address the dynamic loader computes while it relocates the library (before any constructor
/// runs): the executable's `anchor` (an exported function) plus the stub's distance from it. Each
/// stub and each cell has its own section, so the linker keeps only those patched code reaches.
pub fn stub_object(anchor: &str, stubs: &[Stub]) -> anyhow::Result<Vec<u8>> {
    let mut object = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let anchor = object.add_symbol(Symbol {
        name: anchor.as_bytes().to_vec(),
        value: 0,
        size: 0,
        kind: SymbolKind::Text,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Undefined,
        flags: SymbolFlags::None,
    });
    for Stub {
        function,
        cell,
        from_anchor,
    } in stubs
    {
        let cell_symbol = add_cell(&mut object, cell, anchor, *from_anchor)?;
        let code = object.add_section(
            Vec::new(),
            format!(".text.{cell}").into_bytes(),
            SectionKind::Text,
        );
        object.append_section_data(code, &STUB, 16);
        object.add_symbol(Symbol {
            name: function.as_bytes().to_vec(),
            value: 0,
            size: STUB.len() as u64,
            kind: SymbolKind::Text,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Section(code),
            flags: SymbolFlags::None,
        });
        object.add_relocation(
            code,
            Relocation {
                offset: DISPLACEMENT_AT,
                symbol: cell_symbol,
                addend: DISPLACEMENT_ADDEND,
                flags: RelocationFlags::Elf {
                    r_type: R_X86_64_PC32,
                },
            },
        )?;
    }
    Ok(object.write()?)
}

/// An address (`anchor + from_anchor`, relocated at load) in a section of its own, read-only once
/// relocated, named by a local symbol.
fn add_cell(
    object: &mut Object,
    cell: &str,
    anchor: SymbolId,
    from_anchor: i64,
) -> anyhow::Result<SymbolId> {
    let section = object.add_section(
        Vec::new(),
        format!(".data.rel.ro.{cell}").into_bytes(),
        SectionKind::ReadOnlyDataWithRel,
    );
    object.append_section_data(section, &[0; 8], 8);
    let flags = RelocationFlags::Elf {
        r_type: R_X86_64_64,
    };
    let address = Relocation {
        offset: 0,
        symbol: anchor,
        addend: from_anchor,
        flags,
    };
    object.add_relocation(section, address)?;
    Ok(object.add_symbol(Symbol {
        name: cell.as_bytes().to_vec(),
        value: 0,
        size: 8,
        kind: SymbolKind::Data,
        scope: SymbolScope::Compilation,
        weak: false,
        section: SymbolSection::Section(section),
        flags: SymbolFlags::None,
    }))
}
