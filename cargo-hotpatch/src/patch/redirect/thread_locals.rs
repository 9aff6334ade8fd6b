//! Redirecting local-dynamic accesses to the host's private thread-locals, and to those an
//! earlier patch introduced.
//!
//! Such an access is `lea X@tlsld(%rip), %rdi; call __tls_get_addr` (the base of the module's
//! thread-local block) then `X@dtpoff` added to it. The first relocation is turned into a plain
//! PC-relative reference to the patch's copy of `X`, made an ordinary 16-byte cell that the
//! runtime fills with the TLS module id of the module holding the running `X` (the executable,
//! or the earlier patch that introduced it) and offset 0; each `X@dtpoff` is replaced by the
//! offset of the running `X` in that module's block. Any other access model, or a function that
//! mixes thread-locals of two modules (the host's and new ones, or two patches') on one base,
//! cannot be redirected.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;

use super::{is_own_copy, Origins, Redirections};
use crate::host::HostLocalData;
use crate::object::edit::{set_rela_kind, set_symbol_kind, tls_section_to_data};
use crate::object::elf::{self, Elf, Rela, Section};
use crate::object::x86_64::{
    R_X86_64_DTPOFF32, R_X86_64_DTPOFF64, R_X86_64_GOTTPOFF, R_X86_64_NONE, R_X86_64_PC32,
    R_X86_64_TLSGD, R_X86_64_TLSLD, R_X86_64_TPOFF32,
};

/// A cell for a thread-local holds a `tls_index`: the module id and an offset.
const TLS_CELL_SIZE: u64 = 16;

/// Host thread-locals that cannot be redirected, with why.
type Refused = BTreeMap<String, &'static str>;

/// The edits that redirect one code section's accesses to host thread-locals.
struct Plan {
    /// The host thread-locals it reaches.
    names: BTreeSet<String>,
    /// `X@tlsld` relocations, to become plain PC-relative references to the cell.
    to_pc32: Vec<Rela>,
    /// `X@dtpoff` relocations, their place in the file and the host's offset to write there.
    dtpoff: Vec<(Rela, usize, i64)>,
    /// The symbols that become cells.
    cells: BTreeSet<usize>,
}

/// Redirects the object's accesses to the host's private thread-locals (in `bytes`, in place);
/// records what it did, and what it could not redirect, in `out`.
pub(super) fn redirect(
    bytes: &mut [u8],
    host_local_data: &HostLocalData,
    origins: &Origins,
    out: &mut Redirections,
) -> anyhow::Result<()> {
    let elf = Elf::parse(bytes)?;
    let (mut plans, mut refused) = plan(&elf, bytes, host_local_data, origins);
    refuse_unfit_cells(&elf, &plans, &mut refused);
    spread_refusals(&plans, &mut refused);
    plans.retain(|plan| !plan.names.iter().any(|name| refused.contains_key(name)));
    for (name, why) in refused {
        out.unredirectable
            .entry(name)
            .or_insert_with(|| why.to_owned());
    }
    apply(bytes, &elf, &plans, out)?;
    convert_cells(bytes, &elf, &plans);
    Ok(())
}

/// A plan for every code section that reaches host thread-locals in a way that can be
/// redirected; the thread-locals reached in other ways.
fn plan(
    elf: &Elf,
    bytes: &[u8],
    host_local_data: &HostLocalData,
    origins: &Origins,
) -> (Vec<Plan>, Refused) {
    let host_name = |symbol: &elf::Symbol| -> Option<String> {
        let name = elf.static_name(symbol)?;
        (host_local_data.contains_key(&name) && !is_own_copy(&name)).then_some(name)
    };
    let mut plans = Vec::new();
    let mut refused = Refused::new();
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
        match plan_section(target, tls, host_local_data, origins) {
            Ok(plan) => plans.push(plan),
            Err((names, why)) => {
                for name in names {
                    refused.entry(name).or_insert(why);
                }
            }
        }
    }
    (plans, refused)
}

/// The plan for one code section's thread-local accesses (`tls`, with the host thread-local each
/// reaches), or the host thread-locals it reaches and why they cannot be redirected.
fn plan_section(
    target: &Section,
    tls: Vec<(Rela, Option<String>)>,
    host_local_data: &HostLocalData,
    origins: &Origins,
) -> Result<Plan, (BTreeSet<String>, &'static str)> {
    let names: BTreeSet<String> = tls.iter().filter_map(|(_, n)| n.clone()).collect();
    // One `X@tlsld` base serves one module: the executable's (`None`) or one earlier patch's.
    let modules: BTreeSet<Option<&String>> = names.iter().map(|n| origins.get(n)).collect();
    let mixed = tls.iter().any(|(_, name)| name.is_none()) || modules.len() > 1;
    let other_model = tls
        .iter()
        .any(|(r, _)| !matches!(r.kind, R_X86_64_TLSLD | R_X86_64_DTPOFF32));
    if mixed || other_model {
        let why = if mixed {
            "it shares a thread-local base with a thread-local of another module"
        } else {
            "it is reached with a thread-local access model that cannot be redirected"
        };
        return Err((names, why));
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
    Ok(plan)
}

/// A cell must be a thread-local of its own that can hold a `tls_index`.
fn refuse_unfit_cells(elf: &Elf, plans: &[Plan], refused: &mut Refused) {
    for plan in plans {
        for &cell in &plan.cells {
            let symbol = &elf.symbols[cell];
            let section = &elf.sections[usize::from(symbol.section)];
            let fits = section.kind == elf::SHT_NOBITS || section.size >= TLS_CELL_SIZE;
            if section.flags & elf::SHF_TLS == 0 || !fits {
                for name in &plan.names {
                    refused
                        .entry(name.clone())
                        .or_insert("its thread-local block cannot hold a redirect");
                }
            }
        }
    }
}

/// A thread-local that cannot be redirected everywhere is redirected nowhere: every plan touching
/// a refused one refuses all the thread-locals it touches, until nothing changes.
fn spread_refusals(plans: &[Plan], refused: &mut Refused) {
    loop {
        let before = refused.len();
        for plan in plans {
            if plan.names.iter().any(|name| refused.contains_key(name)) {
                for name in &plan.names {
                    refused
                        .entry(name.clone())
                        .or_insert("another access to it cannot be redirected");
                }
            }
        }
        if refused.len() == before {
            break;
        }
    }
}

/// Rewrites the relocations of the plans and records the redirected thread-locals and cells.
fn apply(
    bytes: &mut [u8],
    elf: &Elf,
    plans: &[Plan],
    out: &mut Redirections,
) -> anyhow::Result<()> {
    for plan in plans {
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
    Ok(())
}

/// Turns the cells' sections into ordinary data: their symbols become plain data objects, and
/// nothing may still treat them as thread-locals.
fn convert_cells(bytes: &mut [u8], elf: &Elf, plans: &[Plan]) {
    let converted: BTreeSet<usize> = plans
        .iter()
        .flat_map(|plan| plan.cells.iter())
        .map(|&cell| usize::from(elf.symbols[cell].section))
        .collect();
    for &index in &converted {
        tls_section_to_data(bytes, &elf.sections[index], TLS_CELL_SIZE);
    }
    for symbol in &elf.symbols {
        if converted.contains(&usize::from(symbol.section)) && symbol.kind == elf::STT_TLS {
            set_symbol_kind(bytes, symbol, elf::STT_OBJECT);
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
}
