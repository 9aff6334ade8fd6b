//! What the compiler's output says about a patch: which hot functions it carries (with their
//! signature fingerprints) and which of the host's private statics its code would reach.
//!
//! A patch library gets its own copy of every private (local) static of the rebuilt crate. Code
//! reached from the patch's hot functions that touches such a static would silently fork the
//! host's state unless [`crate::redirect`] could redirect every reference to it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Local data symbols of the host: mangled name to address (offset from the module base).
pub type HostLocalData = BTreeMap<String, u64>;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget, SectionKind};

/// Marks the name of a hot function's original code; the fingerprint follows.
const ORIGINAL_MARK: &str = "__hot_original_";
/// Statics a patch must have its own copy of, or that the runtime keeps in step itself.
const OWN_COPY_EXPECTED: &[&str] = &["__HOT_SLOT", "__HOT_STATE", "__INVENTORY"];

/// A hot function found in a binary or object: its identity (demangled path of the original,
/// without the fingerprint) and its signature fingerprint.
pub type HotFunctions = BTreeMap<String, u64>;

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

/// What the patch objects contain.
#[derive(Debug, Default)]
pub struct PatchAnalysis {
    /// The hot functions the patch carries.
    pub hot: HotFunctions,
    /// Private statics of the host that code reachable from the patch's hot functions touches:
    /// `(mangled name, the hot function that reaches it)`.
    pub reached_statics: Vec<(String, String)>,
    /// Private statics the patch defines that the host does not have: new state.
    pub new_statics: Vec<(String, String)>,
}

/// Analyses the patch objects against the host's local data symbols.
///
/// The objects are one graph: a crate's codegen units refer to each other's functions and
/// statics by (hidden) symbol, so code a hot function reaches may sit in another object.
pub fn analyse_objects(
    objects: &[PathBuf],
    host_local_data: &HostLocalData,
) -> anyhow::Result<PatchAnalysis> {
    let data = objects
        .iter()
        .map(|path| std::fs::read(path).with_context(|| format!("reading {}", path.display())))
        .collect::<anyhow::Result<Vec<Vec<u8>>>>()?;
    let files = data
        .iter()
        .zip(objects)
        .map(|(bytes, path)| {
            object::File::parse(&**bytes).with_context(|| format!("parsing {}", path.display()))
        })
        .collect::<anyhow::Result<Vec<object::File>>>()?;
    let mut analysis = analyse_graph(&files, host_local_data);
    analysis.reached_statics.sort();
    analysis.reached_statics.dedup_by(|a, b| a.0 == b.0);
    analysis.new_statics.sort();
    analysis.new_statics.dedup_by(|a, b| a.0 == b.0);
    Ok(analysis)
}

/// A section of one of the objects.
type Node = (usize, object::SectionIndex);

fn analyse_graph(files: &[object::File], host_local_data: &HostLocalData) -> PatchAnalysis {
    let mut analysis = PatchAnalysis::default();
    // Where each symbol visible to other objects is defined; the private data of the objects
    // (local, or hidden when several codegen units share it: a public static resolves to the
    // host's at load time); the hot functions, where the walks start.
    let mut definitions: HashMap<&str, Node> = HashMap::new();
    let mut local_data: BTreeSet<&str> = BTreeSet::new();
    let mut roots = Vec::new();
    for (at, file) in files.iter().enumerate() {
        for symbol in file.symbols() {
            // Not `is_definition`: for `object` a thread-local is none.
            let (false, Some(section), Ok(name)) =
                (symbol.is_undefined(), symbol.section_index(), symbol.name())
            else {
                continue;
            };
            if !symbol.is_local() {
                definitions.entry(name).or_insert((at, section));
            }
            let data = matches!(
                symbol.kind(),
                object::SymbolKind::Data | object::SymbolKind::Tls
            );
            if data && symbol.scope() != object::SymbolScope::Dynamic {
                local_data.insert(name);
            }
            if let (Some((identity, fingerprint)), true) =
                (hot_identity(name), symbol.is_definition())
            {
                analysis.hot.insert(identity.clone(), fingerprint);
                roots.push(((at, section), identity));
            }
        }
    }
    // The graph: sections, linked by the relocations in them. With one section per function and
    // per static (rustc's default) this is the call and reference graph of the crates.
    let mut edges: HashMap<Node, Vec<Node>> = HashMap::new();
    for (at, file) in files.iter().enumerate() {
        for section in file.sections() {
            let targets = edges.entry((at, section.index())).or_default();
            for (_, relocation) in section.relocations() {
                let RelocationTarget::Symbol(index) = relocation.target() else {
                    continue;
                };
                let Ok(symbol) = file.symbol_by_index(index) else {
                    continue;
                };
                match symbol.section_index() {
                    Some(target) => targets.push((at, target)),
                    None => {
                        if let Some(&node) = symbol.name().ok().and_then(|n| definitions.get(n)) {
                            targets.push(node);
                        }
                    }
                }
            }
        }
    }
    for (root, identity) in roots {
        let mut seen = BTreeSet::new();
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            if !seen.insert((node.0, node.1 .0)) {
                continue;
            }
            let Ok(section) = files[node.0].section_by_index(node.1) else {
                continue;
            };
            if let Some(mangled) = private_static_of(&section) {
                if !is_own_copy(mangled) {
                    let reached = (mangled.to_owned(), identity.clone());
                    if host_local_data.contains_key(mangled) {
                        analysis.reached_statics.push(reached);
                    } else if local_data.contains(mangled) {
                        analysis.new_statics.push(reached);
                    }
                }
                continue;
            }
            if let Some(next) = edges.get(&node) {
                stack.extend(next.iter().copied());
            }
        }
    }
    analysis
}

/// Whether a patch must keep its own copy of this static (the runtime keeps hot function slots in
/// step itself, and registrations and `#[hot_state]` descriptors must be the patch's own).
pub fn is_own_copy(mangled: &str) -> bool {
    OWN_COPY_EXPECTED.iter().any(|own| mangled.contains(own))
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
