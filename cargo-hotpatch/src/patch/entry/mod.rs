//! Entry redirection (issue 14): the functions of the running program whose machine code the
//! patch changes, other than `#[hot]` ones (their table slots switch them), each found in the base
//! executable's symbol table and in the patch library's, for the runtime to make the old entry
//! jump to the new code.
//!
//! A function the base executable has no symbol for was dropped by its link (nothing calls it)
//! and needs no redirect: its rebuilt crate's machine code is the base's own, so a function
//! inlined into its callers there is inlined here too, and those callers differ instead.

mod callers;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use hotreload_runtime::wire::patch_file::EntryRedirect;

use crate::host::{BaseRecord, CrateRecord};
use crate::object::read::{function_symbols, FunctionSymbol};
use crate::patch::changes::machine_code::normalise;
use crate::patch::refusal::Refusal;

/// The functions a patch redirects, by normalised mangled name, each with its entries in the
/// running executable (several for a function with a copy in several codegen units).
#[derive(Debug, Default)]
pub struct EntryPlan {
    targets: BTreeMap<String, Vec<FunctionSymbol>>,
    /// The base's functions whose signature changed (mangled).
    resigned: Vec<String>,
    /// The crates the patch rebuilds.
    rebuilt: Vec<String>,
}

/// The base executable's functions, by normalised name, read once per executable.
type HostFunctions = BTreeMap<String, Vec<FunctionSymbol>>;

static HOST_FUNCTIONS: Mutex<Option<(String, Arc<Option<HostFunctions>>)>> = Mutex::new(None);

/// Reads the base executable's functions ahead of the first patch that needs them.
pub fn read_host_functions(base: &BaseRecord) -> anyhow::Result<()> {
    host_functions(base).map(drop)
}

fn host_functions(base: &BaseRecord) -> anyhow::Result<Arc<Option<HostFunctions>>> {
    let mut cached = HOST_FUNCTIONS
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some((build_id, functions)) = cached.as_ref() {
        if *build_id == base.identity.build_id {
            return Ok(functions.clone());
        }
    }
    let functions = Arc::new(function_symbols(&base.executable)?.map(by_name));
    *cached = Some((base.identity.build_id.clone(), functions.clone()));
    Ok(functions)
}

fn by_name(symbols: Vec<FunctionSymbol>) -> HostFunctions {
    let mut out = HostFunctions::new();
    for symbol in symbols {
        out.entry(normalise(&symbol.name)).or_default().push(symbol);
    }
    out
}

/// Whether a changed function is switched some other way, or never called again: a hot
/// function's code (its slot, which holds its original or, under rollback on panic, its
/// contained entry), registrations run at start, the C `main` shim.
fn switched_otherwise(demangled: &str, mangled: &str) -> bool {
    demangled.contains("__hot_original_")
        || demangled.contains("::__hot_contained")
        || demangled.contains("__INVENTORY")
        || demangled.contains("__ctor")
        || mangled == "main"
}

impl EntryPlan {
    /// The functions of `differing` (each rebuilt crate with the mangled names of its functions
    /// whose code differs from the base's) that the running executable has; refuses a changed
    /// `main`, a stripped executable, a changed half of merged functions, and a function of
    /// `resigned` (its signature changed) that a function the patch does not replace calls.
    pub fn new(
        base: &BaseRecord,
        differing: &[(&CrateRecord, Vec<String>)],
        resigned: &[String],
    ) -> anyhow::Result<Self> {
        let mut wanted = Vec::new();
        for (record, names) in differing {
            for name in names {
                let readable = demangled(name);
                if switched_otherwise(&readable, name) {
                    continue;
                }
                if record.is_binary() && readable == format!("{}::main", record.name) {
                    refuse_main(record, readable)?;
                    continue;
                }
                wanted.push(name.clone());
            }
        }
        let mut plan = EntryPlan {
            resigned: resigned.to_vec(),
            rebuilt: differing.iter().map(|(r, _)| r.name.clone()).collect(),
            ..EntryPlan::default()
        };
        let Some(first) = wanted.first().or(resigned.first()) else {
            return Ok(plan);
        };
        let host = host_functions(base)?;
        let Some(host) = host.as_ref() else {
            return Err(Refusal::NoSymbolTable {
                function: demangled(first),
                executable: base.executable.display().to_string(),
            }
            .into());
        };
        for name in &wanted {
            if let Some(entries) = host.get(name) {
                plan.targets.insert(name.clone(), entries.clone());
            }
        }
        plan.refuse_half_merged(host)?;
        Ok(plan)
    }

    /// Refuses when a function of `resigned` (its signature changed: the patch has it under
    /// another symbol) is still called by a function of the executable the patch does not
    /// replace (redirect, or swap as a hot function of a `rebuilt` crate): that caller would go
    /// on calling the old code the old way. Only code of the workspace's crates (or generic
    /// code instantiated with their items) can call a workspace function: a call-like pair of
    /// bytes elsewhere is not one.
    pub fn refuse_surviving_callers(&self, base: &BaseRecord) -> anyhow::Result<()> {
        let (resigned, rebuilt) = (&self.resigned, &self.rebuilt);
        let host = host_functions(base)?;
        let Some(host) = host.as_ref() else {
            return Ok(());
        };
        let old: BTreeMap<u64, &String> = resigned
            .iter()
            .filter_map(|name| Some((name, host.get(name)?)))
            .flat_map(|(name, symbols)| symbols.iter().map(move |s| (s.address, name)))
            .collect();
        if old.is_empty() {
            return Ok(());
        }
        let callees = old.keys().copied().collect();
        for (caller, callee) in callers::callers_of(&base.executable, host, &callees)? {
            if self.targets.contains_key(&caller) || resigned.contains(&caller) {
                continue;
            }
            let caller = demangled(&caller);
            if !base.crates.iter().any(|c| names_crate(&caller, &c.name)) {
                continue;
            }
            let krate = caller.trim_start_matches('<');
            let krate = krate.split("::").next().unwrap_or(krate).to_owned();
            // A hot function of a rebuilt crate: the patch replaces it through its slot.
            if caller.contains("__hot_original_") && rebuilt.contains(&krate) {
                continue;
            }
            return Err(Refusal::SignatureChanged {
                function: demangled(old[&callee]),
                caller,
                krate,
            }
            .into());
        }
        Ok(())
    }

    /// Refuses a redirect of an entry the executable also names otherwise (the compiler merged
    /// identical functions) for a function of a `rebuilt` crate, unless every name of it is
    /// redirected: then it is redirected once. An instance of another crate's generic code
    /// merged so keeps its running code, said: which instances a crate's objects hold and merge
    /// depends on how it was split into codegen units, not only on what changed.
    fn refuse_half_merged(&mut self, host: &HostFunctions) -> Result<(), Refusal> {
        let addresses: BTreeSet<u64> = self.targets.values().flatten().map(|s| s.address).collect();
        let mut names_at: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
        for (name, symbols) in host {
            for symbol in symbols.iter().filter(|s| addresses.contains(&s.address)) {
                names_at.entry(symbol.address).or_default().push(name);
            }
        }
        let mut kept = Vec::new();
        for (name, symbols) in &self.targets {
            let unchanged = symbols
                .iter()
                .flat_map(|symbol| &names_at[&symbol.address])
                .find(|other| !self.targets.contains_key(**other));
            let Some(other) = unchanged else { continue };
            let function = demangled(name);
            let own = function.trim_start_matches('<').split("::").next();
            if own.is_some_and(|krate| self.rebuilt.iter().any(|r| r == krate)) {
                let merged_with = demangled(other);
                return Err(Refusal::MergedFunctionChanged {
                    function,
                    merged_with,
                });
            }
            crate::shell::warning(format!(
                "`{function}` differs from the running build's, but shares its entry with \
                 `{}`, which does not: it keeps its running code",
                demangled(other)
            ));
            kept.push(name.clone());
        }
        for name in kept {
            self.targets.remove(&name);
        }
        let mut redirected = BTreeSet::new();
        for symbols in self.targets.values_mut() {
            symbols.retain(|symbol| redirected.insert(symbol.address));
        }
        self.targets.retain(|_, symbols| !symbols.is_empty());
        Ok(())
    }

    /// The functions redirected, by normalised mangled name: the link keeps them, and the
    /// analysis walks from them like from hot functions.
    pub fn roots(&self) -> BTreeSet<String> {
        self.targets.keys().cloned().collect()
    }

    /// Each entry redirected, with the new code's place in the linked `library`.
    pub fn redirects(&self, library: &Path) -> anyhow::Result<Vec<EntryRedirect>> {
        if self.targets.is_empty() {
            return Ok(Vec::new());
        }
        let patch = function_symbols(library)?.map(by_name).unwrap_or_default();
        let mut out = Vec::new();
        for (name, entries) in &self.targets {
            let new = patch
                .get(name)
                .and_then(|copies| copies.iter().map(|s| s.address).min())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "the linked patch library has no code for `{}`, which it must redirect to",
                        demangled(name)
                    )
                })?;
            out.extend(entries.iter().map(|entry| EntryRedirect {
                name: demangled(name),
                host_offset: entry.address,
                host_size: entry.size,
                patch_offset: new,
            }));
        }
        out.sort_by_key(|redirect| redirect.host_offset);
        Ok(out)
    }
}

/// A binary's `main` runs once, from the start: an edit of it is refused. Changed only because
/// it holds a copy of another crate's changed code (inlined), it cannot take that either: said.
fn refuse_main(record: &CrateRecord, main: String) -> Result<(), Refusal> {
    if !record.changed_sources().is_empty() {
        return Err(Refusal::MainChanged { function: main });
    }
    crate::shell::warning(format!(
        "`{main}` holds a copy of changed code of another crate (inlined); it runs once, from \
         the start, so the running `main` keeps its copy (everything it calls is patched)"
    ));
    Ok(())
}

/// Whether the demangled `path` names an item of `krate` (`krate::…` at a path's start).
fn names_crate(path: &str, krate: &str) -> bool {
    let prefix = format!("{krate}::");
    path.match_indices(&prefix).any(|(at, _)| {
        !path[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
    })
}

fn demangled(mangled: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(mangled))
}
