//! What the compiler's output says about a patch: which hot functions it carries (with their
//! signature fingerprints) and which of the host's private statics its code would reach; and the
//! refusals that follow (a hot signature changed, a private static would fork).
//!
//! A patch library gets its own copy of every private (local) static of the rebuilt crate. Code
//! reached from the patch's hot functions that touches such a static would silently fork the
//! host's state unless [`crate::patch::redirect`] could redirect every reference to it.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use anyhow::Context as _;
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget};

use crate::host::{hot_identity, HostLocalData, HotFunctions};
use crate::object::each::each_at_once;
use crate::object::read::{may_be_reached, private_static_of};
use crate::patch::changes::machine_code::normalise;
use crate::patch::redirect::{is_own_copy, made_by_macro, static_name, Redirections};
use crate::patch::refusal::{ForkedStatic, Refusal};

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

/// Analyses the patch objects against the host's local data symbols, walking from the hot
/// functions and from the functions whose entries the patch redirects (`entry_roots`, normalised
/// mangled names).
///
/// The objects are one graph: a crate's codegen units refer to each other's functions and
/// statics by (hidden) symbol, so code a hot function reaches may sit in another object.
pub fn analyse_objects(
    objects: &[PathBuf],
    host_local_data: &HostLocalData,
    entry_roots: &BTreeSet<String>,
) -> anyhow::Result<PatchAnalysis> {
    let data = each_at_once(objects, |path| {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    })
    .into_iter()
    .collect::<anyhow::Result<Vec<Vec<u8>>>>()?;
    let files = data
        .iter()
        .zip(objects)
        .map(|(bytes, path)| {
            object::File::parse(&**bytes).with_context(|| format!("parsing {}", path.display()))
        })
        .collect::<anyhow::Result<Vec<object::File>>>()?;
    let mut analysis = analyse_graph(&files, host_local_data, entry_roots);
    analysis.reached_statics.sort();
    analysis.reached_statics.dedup_by(|a, b| a.0 == b.0);
    analysis.new_statics.sort();
    analysis.new_statics.dedup_by(|a, b| a.0 == b.0);
    Ok(analysis)
}

/// A section of one of the objects.
type Node = (usize, object::SectionIndex);

/// What the objects' symbol tables say: where each symbol visible to other objects is defined;
/// the private data of the objects (local, or hidden when several codegen units share it: a
/// public static resolves to the host's at load time); the hot functions, where the walks start.
#[derive(Default)]
struct Symbols<'data> {
    definitions: HashMap<&'data str, Node>,
    local_data: BTreeSet<&'data str>,
    roots: Vec<(Node, String)>,
}

fn analyse_graph(
    files: &[object::File],
    host_local_data: &HostLocalData,
    entry_roots: &BTreeSet<String>,
) -> PatchAnalysis {
    let mut analysis = PatchAnalysis::default();
    let symbols = collect_symbols(files, &mut analysis.hot, entry_roots);
    let edges = reference_graph(files, &symbols.definitions);
    // Each static is named with the first root (by name) that reaches it: walked in that order,
    // a root need not enter what an earlier one walked.
    let mut roots = symbols.roots;
    roots.sort_by(|a, b| a.1.cmp(&b.1));
    let mut seen = BTreeSet::new();
    for (root, identity) in roots {
        for mangled in private_statics_reached(files, &edges, root, &mut seen) {
            let reached = (mangled.to_owned(), identity.clone());
            if host_local_data.contains_key(mangled) {
                analysis.reached_statics.push(reached);
            } else if symbols.local_data.contains(mangled) {
                analysis.new_statics.push(reached);
            }
        }
    }
    analysis
}

/// One pass over the objects' symbols; the hot functions they define go into `hot`, and they and
/// the redirected functions into the walks' roots.
fn collect_symbols<'data>(
    files: &[object::File<'data>],
    hot: &mut HotFunctions,
    entry_roots: &BTreeSet<String>,
) -> Symbols<'data> {
    let mut symbols = Symbols::default();
    for (at, file) in files.iter().enumerate() {
        for symbol in file.symbols() {
            // Not `is_definition`: for `object` a thread-local is none.
            let (false, Some(section), Ok(name)) =
                (symbol.is_undefined(), symbol.section_index(), symbol.name())
            else {
                continue;
            };
            if !symbol.is_local() {
                symbols.definitions.entry(name).or_insert((at, section));
            }
            let data = matches!(
                symbol.kind(),
                object::SymbolKind::Data | object::SymbolKind::Tls
            );
            if data && symbol.scope() != object::SymbolScope::Dynamic {
                symbols.local_data.insert(name);
            }
            if let (Some((identity, fingerprint)), true) =
                (hot_identity(name), symbol.is_definition())
            {
                hot.insert(identity.clone(), fingerprint);
                symbols.roots.push(((at, section), identity));
            } else if symbol.is_definition()
                && symbol.kind() == object::SymbolKind::Text
                && !entry_roots.is_empty()
                && entry_roots.contains(&normalise(name))
            {
                let readable = format!("{:#}", rustc_demangle::demangle(name));
                symbols.roots.push(((at, section), readable));
            }
        }
    }
    symbols
}

/// The graph: sections, linked by the relocations in them. With one section per function and
/// per static (rustc's default) this is the call and reference graph of the crates.
fn reference_graph(
    files: &[object::File],
    definitions: &HashMap<&str, Node>,
) -> HashMap<Node, Vec<Node>> {
    let mut edges: HashMap<Node, Vec<Node>> = HashMap::new();
    for (at, file) in files.iter().enumerate() {
        for section in file.sections().filter(may_be_reached) {
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
    edges
}

/// The private statics (other than the patch's own copies) that code reached from `root` touches,
/// not entering the sections in `seen` (to which it adds those it walks). A walk stops at a
/// static: what a static's initial value points at is not code it runs.
fn private_statics_reached<'data>(
    files: &[object::File<'data>],
    edges: &HashMap<Node, Vec<Node>>,
    root: Node,
    seen: &mut BTreeSet<(usize, usize)>,
) -> Vec<&'data str> {
    let mut reached = Vec::new();
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
                reached.push(mangled);
            }
            continue;
        }
        if let Some(next) = edges.get(&node) {
            stack.extend(next.iter().copied());
        }
    }
    reached
}

/// Refuses a patch that changes the signature of a hot function of the host.
pub fn refuse_changed_signatures(
    found: &PatchAnalysis,
    host_hot: &HotFunctions,
) -> Result<(), Refusal> {
    for (identity, fingerprint) in &found.hot {
        if let Some(host_fingerprint) = host_hot.get(identity) {
            if host_fingerprint != fingerprint {
                return Err(Refusal::HotSignatureChanged {
                    function: identity.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Refuses a patch whose live code reaches a private static of the host that redirection did not
/// redirect: the patch would silently fork it. Names every one.
pub fn refuse_forks(found: &PatchAnalysis, redirections: &Redirections) -> Result<(), Refusal> {
    let forked: Vec<ForkedStatic> = found
        .reached_statics
        .iter()
        .filter_map(|(mangled, via)| {
            let why = match redirections.unredirectable.get(mangled) {
                Some(why) => why.as_str(),
                None if redirections.redirected.contains(mangled) => return None,
                None => "it is not reached in a way the tool recognises",
            };
            Some(ForkedStatic {
                name: static_name(mangled),
                via: via.clone(),
                why: why.to_owned(),
                made_by: made_by_macro(mangled),
            })
        })
        .collect();
    if forked.is_empty() {
        return Ok(());
    }
    Err(Refusal::PrivateStaticWouldFork { statics: forked })
}
