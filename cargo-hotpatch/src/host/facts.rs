//! What the base build's executable says about itself that every patch built against it needs:
//! its hot functions, its private data, its `#[hot_state]` records and its type layouts; and how
//! a hot function's symbol names it ([`hot_identity`], read from patches too).
//!
//! Reading them is a pass over a binary of tens of megabytes and its debug information (about
//! 50 ms for the 26 MB test host, a third of a patch build), and the executable of a base never
//! changes: they are read once per build and kept next to the base record.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context as _;
use hotreload_runtime::wire::state_record::StateRecord;
use object::{Object as _, ObjectSymbol as _};

use crate::host::BaseRecord;
use crate::object::dwarf::{self, Layouts};
use crate::object::read::state_records;

/// Marks the name of a hot function's original code; the fingerprint follows.
const ORIGINAL_MARK: &str = "__hot_original_";

/// A hot function found in a binary or object: its identity (demangled path of the original,
/// without the fingerprint) and its signature fingerprint.
pub type HotFunctions = BTreeMap<String, u64>;

/// Local data symbols of the host: mangled name to address (offset from the module base).
pub type HostLocalData = BTreeMap<String, u64>;

/// The facts of one base build.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HostFacts {
    /// The build they were read from: a base recorded later in the same place is another build.
    build_id: String,
    /// The hot functions, with their signature fingerprints.
    pub hot: HotFunctions,
    /// Private statics and thread-locals: mangled name to offset.
    pub local_data: HostLocalData,
    /// The `#[hot_state]` records.
    pub states: Vec<StateRecord>,
    /// The layouts of the workspace crates' types; `None` without debug information.
    pub layouts: Option<Layouts>,
}

impl HostFacts {
    /// The facts of `base`'s executable, from the cache kept beside it or read (and cached) now.
    pub fn of(base: &BaseRecord) -> anyhow::Result<Self> {
        let cache = base.executable.with_extension("facts.json");
        if let Ok(bytes) = std::fs::read(&cache) {
            if let Ok(facts) = serde_json::from_slice::<HostFacts>(&bytes) {
                if facts.build_id == base.identity.build_id {
                    return Ok(facts);
                }
            }
        }
        let facts = Self::read(base)?;
        // Written whole then renamed: a concurrent reader sees the old cache or the new one.
        let partial = cache.with_extension("json.partial");
        std::fs::write(&partial, serde_json::to_vec(&facts)?)
            .with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, &cache)
            .with_context(|| format!("writing {}", cache.display()))?;
        Ok(facts)
    }

    fn read(base: &BaseRecord) -> anyhow::Result<Self> {
        let (hot, local_data) = host_hot_functions(&base.executable)?;
        let crates: BTreeSet<String> = base.crates.iter().map(|c| c.name.clone()).collect();
        Ok(HostFacts {
            build_id: base.identity.build_id.clone(),
            hot,
            local_data,
            states: state_records(&base.executable)?,
            layouts: dwarf::read(&base.executable, &crates)?,
        })
    }
}

/// The hot functions of a linked binary, from its symbol table.
pub fn host_hot_functions(executable: &Path) -> anyhow::Result<(HotFunctions, HostLocalData)> {
    let data =
        std::fs::read(executable).with_context(|| format!("reading {}", executable.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing {}", executable.display()))?;
    let mut hot = HotFunctions::new();
    let mut local_data = HostLocalData::new();
    for symbol in file.symbols() {
        let Ok(name) = symbol.name() else { continue };
        if let Some((identity, fingerprint)) = hot_identity(name) {
            hot.insert(identity, fingerprint);
        }
        if symbol.is_local()
            && matches!(
                symbol.kind(),
                object::SymbolKind::Data | object::SymbolKind::Tls
            )
        {
            local_data.insert(name.to_owned(), symbol.address());
        }
    }
    Ok((hot, local_data))
}

/// `(identity, fingerprint)` if `mangled` names a hot function's original code.
pub fn hot_identity(mangled: &str) -> Option<(String, u64)> {
    if !mangled.contains(ORIGINAL_MARK) {
        return None;
    }
    let demangled = format!("{:#}", rustc_demangle::demangle(mangled));
    let (head, tail) = demangled.rsplit_once(ORIGINAL_MARK)?;
    // Only the original itself, not code instantiated for it (its closures, drop glue).
    if !tail.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let (name, fingerprint) = match tail.rsplit_once('_') {
        Some((name, fp)) => (name, fp),
        None => ("", tail),
    };
    if fingerprint.len() != 16 {
        return None;
    }
    let fingerprint = u64::from_str_radix(fingerprint, 16).ok()?;
    // Free function: `crate::module::f::__hot_original_FP` is `crate::module::f`.
    // Method: `<T as Helper>::__hot_original_NAME_FP` is `<T as Helper>::__hot_original_NAME`
    // (the runtime matches both forms to its keys).
    let identity = if name.is_empty() {
        head.trim_end_matches("::").to_owned()
    } else {
        format!("{head}{ORIGINAL_MARK}{name}")
    };
    Some((identity, fingerprint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_identities_come_from_original_symbols() {
        // As rustc mangles `logic::step`'s original, and code instantiated for it.
        let free = "_ZN5logic4step31__hot_original_06846a351b91991a17h0eda699935675c33E";
        assert_eq!(
            hot_identity(free),
            Some(("logic::step".to_owned(), 0x0684_6a35_1b91_991a))
        );
        let drop_glue = "_ZN4core3ptr135drop_in_place$LT$tokio..runtime..task..core..Stage$LT$logic..step..__hot_original_06846a351b91991a..$u7b$$u7b$closure$u7d$$u7d$$GT$$GT$17h9b85045aea926a9fE";
        assert_eq!(hot_identity(drop_glue), None);
        assert_eq!(hot_identity("_ZN5logic4step17h0123456789abcdefE"), None);
    }
}
