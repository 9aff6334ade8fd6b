//! Callers that a patch leaves running old code: a function whose signature changed has another
//! symbol in the patch (rustc's symbol hash covers the signature), so code compiled against the
//! old one keeps calling the old one. Such a caller is found in the running executable's code:
//! a `call` or `jmp` with a 32-bit displacement to the old function's entry, or through a global
//! offset table slot the dynamic loader fills with it (rustc calls other crates' functions so).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context as _;
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget};

use crate::object::read::FunctionSymbol;

/// x86-64 `call rel32` and `jmp rel32`.
const CALL_REL32: u8 = 0xe8;
const JMP_REL32: u8 = 0xe9;
/// The first byte of x86-64 `call [rip + disp32]` (`ff 15`) and `jmp [rip + disp32]` (`ff 25`).
const INDIRECT: u8 = 0xff;
const CALL_SLOT: u8 = 0x15;
const JMP_SLOT: u8 = 0x25;

/// For each function of `functions` (the executable's, by name) whose code calls or jumps to one
/// of `callees` (entries), the first such callee: `(caller's name, callee's entry)`.
/// A byte pair that only looks like a call counts too: a refusal too many, never one too few.
pub fn callers_of(
    executable: &Path,
    functions: &BTreeMap<String, Vec<FunctionSymbol>>,
    callees: &BTreeSet<u64>,
) -> anyhow::Result<Vec<(String, u64)>> {
    let data =
        std::fs::read(executable).with_context(|| format!("reading {}", executable.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing {}", executable.display()))?;
    let text: Vec<(u64, &[u8])> = file
        .sections()
        .filter(|section| section.kind() == object::SectionKind::Text)
        .filter_map(|section| Some((section.address(), section.data().ok()?)))
        .collect();
    let slots = slots_of(&file, callees);
    let mut out = Vec::new();
    for (name, symbols) in functions {
        for symbol in symbols {
            let Some(code) = code_of(&text, symbol) else {
                continue;
            };
            if let Some(callee) = first_call_into(code, symbol.address, callees, &slots) {
                out.push((name.clone(), callee));
                break;
            }
        }
    }
    Ok(out)
}

/// The bytes of `symbol`'s code.
fn code_of<'a>(text: &[(u64, &'a [u8])], symbol: &FunctionSymbol) -> Option<&'a [u8]> {
    let (start, bytes) = text
        .iter()
        .find(|(start, bytes)| (*start..*start + bytes.len() as u64).contains(&symbol.address))?;
    let from = (symbol.address - start) as usize;
    let to = from.checked_add(symbol.size as usize)?.min(bytes.len());
    Some(&bytes[from..to])
}

/// The global offset table slots the dynamic loader fills with one of `callees`: slot to callee.
fn slots_of(file: &object::File, callees: &BTreeSet<u64>) -> BTreeMap<u64, u64> {
    let Some(relocations) = file.dynamic_relocations() else {
        return BTreeMap::new();
    };
    relocations
        .filter_map(|(slot, relocation)| {
            let base = match relocation.target() {
                RelocationTarget::Absolute => 0,
                RelocationTarget::Symbol(index) => file.symbol_by_index(index).ok()?.address(),
                _ => return None,
            };
            let target = base.checked_add_signed(relocation.addend())?;
            callees.contains(&target).then_some((slot, target))
        })
        .collect()
}

/// The first of `callees` that `code` (at `address`) calls or jumps to: directly with a 32-bit
/// displacement, or through one of `slots`.
fn first_call_into(
    code: &[u8],
    address: u64,
    callees: &BTreeSet<u64>,
    slots: &BTreeMap<u64, u64>,
) -> Option<u64> {
    (0..code.len().saturating_sub(4)).find_map(|at| {
        let displacement = |from: usize| -> Option<u64> {
            let bytes = code.get(from..from + 4)?.try_into().ok()?;
            let next = address + from as u64 + 4;
            next.checked_add_signed(i64::from(i32::from_le_bytes(bytes)))
        };
        match code[at] {
            CALL_REL32 | JMP_REL32 => displacement(at + 1).filter(|t| callees.contains(t)),
            INDIRECT if matches!(code.get(at + 1), Some(&(CALL_SLOT | JMP_SLOT))) => {
                slots.get(&displacement(at + 2)?).copied()
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_found_by_its_target() {
        // At 0x1000: nop; call 0x2000 (displacement 0x2000 - 0x1006); ret.
        let displacement = (0x2000i64 - 0x1006) as i32;
        let mut code = vec![0x90, CALL_REL32];
        code.extend(displacement.to_le_bytes());
        code.push(0xc3);
        let callees = BTreeSet::from([0x2000]);
        let none = BTreeMap::new();
        assert_eq!(
            first_call_into(&code, 0x1000, &callees, &none),
            Some(0x2000)
        );
        assert_eq!(first_call_into(&code, 0x1001, &callees, &none), None);
        assert_eq!(first_call_into(&code[..5], 0x1000, &callees, &none), None);
    }

    #[test]
    fn a_call_through_a_slot_is_found_by_the_slot() {
        // At 0x1000: call [rip + 0x3000 - 0x1006], the slot at 0x3000 holding 0x2000.
        let displacement = (0x3000i64 - 0x1006) as i32;
        let mut code = vec![INDIRECT, CALL_SLOT];
        code.extend(displacement.to_le_bytes());
        let callees = BTreeSet::from([0x2000]);
        let slots = BTreeMap::from([(0x3000, 0x2000)]);
        assert_eq!(
            first_call_into(&code, 0x1000, &callees, &slots),
            Some(0x2000)
        );
        assert_eq!(
            first_call_into(&code, 0x1000, &callees, &BTreeMap::new()),
            None
        );
    }
}
