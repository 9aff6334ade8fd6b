//! The functions of the host executable, by mangled name: where a patch's unchanged functions
//! find their running copies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use object::{Object as _, ObjectSymbol as _};

/// The executable's functions.
#[derive(Debug, Default)]
pub struct HostFunctions {
    /// Mangled name to offset from the executable's load base, for every function whose name the
    /// symbol table holds once (a name defined twice names no one function).
    pub offsets: BTreeMap<String, u64>,
    /// The functions the executable exports (it links `--export-dynamic`), with their offsets: a
    /// patch library finds any other function's address as the dynamic loader's address of one of
    /// these plus a constant.
    pub exported: BTreeMap<String, u64>,
}

/// The anchor a patch prefers: every executable has it.
const PREFERRED_ANCHOR: &str = "main";

/// The last executable read (by path and build id), kept for the next patch of a `watch`.
static LAST: Mutex<Option<(PathBuf, String, Arc<HostFunctions>)>> = Mutex::new(None);

/// The functions of `executable`, whose build id is `build_id`.
pub fn host_functions(executable: &Path, build_id: &str) -> anyhow::Result<Arc<HostFunctions>> {
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((path, id, functions)) = last.as_ref() {
        if path == executable && id == build_id {
            return Ok(functions.clone());
        }
    }
    let functions = Arc::new(read_functions(executable)?);
    *last = Some((
        executable.to_owned(),
        build_id.to_owned(),
        functions.clone(),
    ));
    Ok(functions)
}

fn read_functions(executable: &Path) -> anyhow::Result<HostFunctions> {
    let data =
        std::fs::read(executable).with_context(|| format!("reading {}", executable.display()))?;
    let file =
        object::File::parse(&*data).with_context(|| format!("parsing {}", executable.display()))?;
    let mut functions = BTreeMap::new();
    let mut twice = Vec::new();
    for symbol in file.symbols() {
        if symbol.kind() != object::SymbolKind::Text || !symbol.is_definition() {
            continue;
        }
        let Ok(name) = symbol.name() else { continue };
        if functions
            .insert(name.to_owned(), symbol.address())
            .is_some()
        {
            twice.push(name.to_owned());
        }
    }
    for name in twice {
        functions.remove(&name);
    }
    let exported = file
        .dynamic_symbols()
        .filter(|symbol| symbol.kind() == object::SymbolKind::Text && symbol.is_definition())
        .filter_map(|symbol| symbol.name().ok())
        .filter_map(|name| Some((name.to_owned(), *functions.get(name)?)))
        .collect();
    Ok(HostFunctions {
        offsets: functions,
        exported,
    })
}

impl HostFunctions {
    /// An exported function no patch object defines (`defined_by_patch`), to find the others from:
    /// `main`, unless the patch rebuilds the binary (its own `main` would be bound instead, since
    /// a patch library binds the functions it defines to itself).
    pub fn anchor(&self, defined_by_patch: impl Fn(&str) -> bool) -> Option<(&str, u64)> {
        let preferred = self.exported.get_key_value(PREFERRED_ANCHOR);
        preferred
            .into_iter()
            .chain(&self.exported)
            .find(|(name, _)| !defined_by_patch(name))
            .map(|(name, offset)| (name.as_str(), *offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anchor_is_main_unless_the_patch_defines_it() {
        let exported: BTreeMap<String, u64> =
            [("a_export", 0x10), ("main", 0x20), ("z_export", 0x30)]
                .map(|(name, offset)| (name.to_owned(), offset))
                .into();
        let host = HostFunctions {
            offsets: exported.clone(),
            exported,
        };
        assert_eq!(host.anchor(|_| false), Some(("main", 0x20)));
        assert_eq!(host.anchor(|name| name == "main"), Some(("a_export", 0x10)));
        assert_eq!(host.anchor(|_| true), None);
    }
}
