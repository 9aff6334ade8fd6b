//! Which differences between builds count as changes.

use super::*;

#[test]
fn changes_are_classified_by_what_runs_them() {
    let changed = [
        "logic::step::__hot_original_06846a351b91991a".to_owned(),
        "logic::step::__hot_original_06846a351b91991a::{{closure}}".to_owned(),
        "<logic::Report as logic::__HotOriginals_00aa>::__hot_original_fmt_1234567890abcdef"
            .to_owned(),
        "logic::helper".to_owned(),
        "logic::step::_::__ctor".to_owned(),
        // The code calling the slot is not listed again as not hot.
        "logic::step".to_owned(),
        "logic::step::{{closure}}".to_owned(),
        "<logic::Report as core::fmt::Display>::fmt".to_owned(),
    ];
    let (hot, other) = classify_changes(&changed);
    assert_eq!(hot, ["logic::Report::fmt", "logic::step"]);
    assert_eq!(other, ["logic::helper"]);
}

#[test]
fn source_positions_lose_their_numbers() {
    assert_eq!(
        &*without_line_numbers(b"event src/lib.rs:68"),
        b"event src/lib.rs:"
    );
    assert_eq!(
        &*without_line_numbers(b"at logic/src/lib.rs:68:5 and a.rs:7"),
        b"at logic/src/lib.rs:: and a.rs:"
    );
    assert_eq!(&*without_line_numbers(b"version=v1"), b"version=v1");
}

/// An object whose function `f` loads the float at `slot` of a `.rodata.cst4` pool holding
/// `pool`, through the pool's section symbol as LLVM writes it.
fn float_loader(pool: &[f32], slot: usize) -> Vec<u8> {
    use object::write::{Object, Relocation, Symbol, SymbolSection};
    use object::{elf, SymbolFlags, SymbolKind, SymbolScope};
    let mut obj = Object::new(
        object::BinaryFormat::Elf,
        object::Architecture::X86_64,
        object::Endianness::Little,
    );
    let text = obj.add_section(Vec::new(), b".text.f".to_vec(), SectionKind::Text);
    obj.append_section_data(text, &[0x90; 16], 16);
    let cst = obj.add_section(
        Vec::new(),
        b".rodata.cst4".to_vec(),
        SectionKind::ReadOnlyData,
    );
    let bytes: Vec<u8> = pool.iter().flat_map(|f| f.to_le_bytes()).collect();
    obj.append_section_data(cst, &bytes, 4);
    obj.section_mut(cst).flags = object::SectionFlags::Elf {
        sh_flags: u64::from(elf::SHF_ALLOC | elf::SHF_MERGE),
    };
    obj.add_symbol(Symbol {
        name: b"f".to_vec(),
        value: 0,
        size: 16,
        kind: SymbolKind::Text,
        scope: SymbolScope::Linkage,
        weak: false,
        section: SymbolSection::Section(text),
        flags: SymbolFlags::None,
    });
    let pool_symbol = obj.section_symbol(cst);
    let relocation = Relocation {
        offset: 4,
        symbol: pool_symbol,
        addend: 4 * slot as i64 - 4,
        flags: object::RelocationFlags::Elf {
            r_type: elf::R_X86_64_PC32,
        },
    };
    obj.add_relocation(text, relocation).unwrap();
    obj.write().unwrap()
}

fn fingerprint_of_f(object: &[u8]) -> String {
    let mut out = Fingerprints::new();
    add_object(object, &mut out);
    out["f"].clone()
}

#[test]
fn a_pooled_constant_is_its_value_not_its_place_in_the_pool() {
    let before = fingerprint_of_f(&float_loader(&[0.5, 2.0], 1));
    // An edit elsewhere in the unit added a float before it in the pool.
    let moved = fingerprint_of_f(&float_loader(&[0.6, 0.5, 2.0], 2));
    assert_eq!(before, moved, "the same float, elsewhere in the pool");
    let other = fingerprint_of_f(&float_loader(&[0.5, 2.0], 0));
    assert_ne!(before, other, "another float");
}

/// An object whose function `f` calls `g`: defined in the same unit (called through its
/// section, as LLVM writes a local call) or in another (called through its symbol).
fn caller(callee_here: bool) -> Vec<u8> {
    use object::write::{Object, Relocation, Symbol, SymbolSection};
    use object::{elf, SymbolFlags, SymbolKind, SymbolScope};
    let mut obj = Object::new(
        object::BinaryFormat::Elf,
        object::Architecture::X86_64,
        object::Endianness::Little,
    );
    let function = |name: &str, section| Symbol {
        name: name.as_bytes().to_vec(),
        value: 0,
        size: 16,
        kind: SymbolKind::Text,
        scope: SymbolScope::Linkage,
        weak: false,
        section,
        flags: SymbolFlags::None,
    };
    let text = obj.add_section(Vec::new(), b".text.f".to_vec(), SectionKind::Text);
    obj.append_section_data(text, &[0x90; 16], 16);
    let f = function("f", SymbolSection::Section(text));
    obj.add_symbol(f);
    let target = if callee_here {
        let g_text = obj.add_section(Vec::new(), b".text.g".to_vec(), SectionKind::Text);
        obj.append_section_data(g_text, &[0xc3; 16], 16);
        obj.section_symbol(g_text)
    } else {
        let g = function("g", SymbolSection::Undefined);
        obj.add_symbol(g)
    };
    let call = Relocation {
        offset: 1,
        symbol: target,
        addend: -4,
        flags: object::RelocationFlags::Elf {
            r_type: elf::R_X86_64_PLT32,
        },
    };
    obj.add_relocation(text, call).unwrap();
    obj.write().unwrap()
}

#[test]
fn a_call_is_its_callee_wherever_the_callee_was_compiled() {
    assert_eq!(
        fingerprint_of_f(&caller(true)),
        fingerprint_of_f(&caller(false))
    );
}

#[test]
fn build_specific_names_are_normalised() {
    assert_eq!(normalise("anon.0123abcd.7"), "anon.7");
    assert_eq!(
        normalise("_ZN5logic4step17h0123E.llvm.42"),
        "_ZN5logic4step17h0123E"
    );
}

#[test]
fn a_function_or_method_of_the_crate_under_another_symbol_changed_its_signature() {
    let fingerprints = |names: &[&str]| -> Fingerprints {
        names
            .iter()
            .map(|n| (n.to_string(), "same".to_owned()))
            .collect()
    };
    let before = fingerprints(&[
        "_ZN54_$LT$snake..Game$u20$as$u20$core..default..Default$GT$7default17h0123456789abcdefE",
        "_ZN5snake8new_game17h0123456789abcdefE",
        "_ZN4core3ptr13drop_in_place17h0123456789abcdefE",
    ]);
    let now = fingerprints(&[
        "_ZN54_$LT$snake..Game$u20$as$u20$core..default..Default$GT$7default17hfedcba9876543210E",
        "_ZN5snake8new_game17hfedcba9876543210E",
        "_ZN4core3ptr13drop_in_place17h0123456789abcdefE",
    ]);
    let resigned = resigned_functions(&before, &now, "snake");
    assert_eq!(resigned, ["_ZN54_$LT$snake..Game$u20$as$u20$core..default..Default$GT$7default17h0123456789abcdefE", "_ZN5snake8new_game17h0123456789abcdefE"]);
}
