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
    /// A function the executable exports (`main`), with its offset: a patch library finds every
    /// other function's address as the dynamic loader's address of this one plus a constant.
    pub anchor: Option<(String, u64)>,
}

/// The symbol every executable built by `cargo hotpatch` exports (it links `--export-dynamic`).
const ANCHOR: &str = "main";

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
        .any(|symbol| symbol.name() == Ok(ANCHOR) && symbol.is_definition());
    let anchor = functions
        .get(ANCHOR)
        .filter(|_| exported)
        .map(|offset| (ANCHOR.to_owned(), *offset));
    Ok(HostFunctions {
        offsets: functions,
        anchor,
    })
}
