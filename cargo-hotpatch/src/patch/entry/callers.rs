//! Callers that a patch leaves running old code: a function whose signature changed has another
//! symbol in the patch (rustc's symbol hash covers the signature), so code compiled against the
//! old one keeps calling the old one. Such a caller is found in the running executable's code:
//! a `call` or `jmp` with a 32-bit displacement to the old function's entry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context as _;
use object::{Object as _, ObjectSection as _};

use crate::object::read::FunctionSymbol;

/// x86-64 `call rel32` and `jmp rel32`.
const CALL_REL32: u8 = 0xe8;
const JMP_REL32: u8 = 0xe9;

/// For each function of `functions` (the executable's, by name) whose code calls or jumps to one
/// of `callees` (entries), the first such callee: `(caller's name, callee's entry)`.
/// A byte pair that only looks like a call counts too: a refusal too many, never one too few.
pub fn callers_of(
    executable: &Path,
    functions: &BTreeMap<String, Vec<FunctionSymbol>>,
    callees: &BTreeSet<u64>,
) -> anyhow::Result<Vec<(String, u64)>> {
    let data = std::fs::read(executable)
        .with_context(|| format!("reading {}", executable.display()))?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("parsing {}", executable.display()))?;
    let text: Vec<(u64, &[u8])> = file
        .sections()
        .filter(|section| section.kind() == object::SectionKind::Text)
        .filter_map(|section| Some((section.address(), section.data().ok()?)))
        .collect();
    let mut out = Vec::new();
    for (name, symbols) in functions {
        for symbol in symbols {
            let Some(code) = code_of(&text, symbol) else {
                continue;
            };
            if let Some(callee) = first_call_into(code, symbol.address, callees) {
                out.push((name.clone(), callee));
                break;
            }
        }
    }
    Ok(out)
}

/// The bytes of `symbol`'s code.
fn code_of<'a>(text: &[(u64, &'a [u8])], symbol: &FunctionSymbol) -> Option<&'a [u8]> {
    let (start, bytes) = text.iter().find(|(start, bytes)| {
        (*start..*start + bytes.len() as u64).contains(&symbol.address)
    })?;
    let from = (symbol.address - start) as usize;
    let to = from.checked_add(symbol.size as usize)?.min(bytes.len());
    Some(&bytes[from..to])
}

/// The first of `callees` that `code` (at `address`) calls or jumps to with a 32-bit displacement.
fn first_call_into(code: &[u8], address: u64, callees: &BTreeSet<u64>) -> Option<u64> {
    (0..code.len().saturating_sub(4)).find_map(|at| {
        if code[at] != CALL_REL32 && code[at] != JMP_REL32 {
            return None;
        }
        let displacement = i32::from_le_bytes(code[at + 1..at + 5].try_into().ok()?);
        let next = address + at as u64 + 5;
        let target = next.checked_add_signed(i64::from(displacement))?;
        callees.contains(&target).then_some(target)
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
        assert_eq!(first_call_into(&code, 0x1000, &callees), Some(0x2000));
        assert_eq!(first_call_into(&code, 0x1001, &callees), None);
        assert_eq!(first_call_into(&code[..5], 0x1000, &callees), None);
    }
}
