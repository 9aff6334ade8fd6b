//! Redirecting a patch's references to the host's private statics.
//!
//! A private static of the rebuilt crate is a local symbol: the patch library gets its own copy,
//! and the dynamic loader cannot bind it to the host's. At low optimisation levels rustc reaches a
//! static only by taking its address, `lea X(%rip), %reg`. Turning that instruction into
//! `mov X(%rip), %reg` makes it load an address from the patch's copy of `X` instead, so the
//! patch's copy becomes a cell: after loading the library, the runtime writes the host's address of
//! `X` into it (the host's module base plus `X`'s offset, found through the build id), and every
//! access lands in the host's static. The patch stays independent of load addresses.
//!
//! A pointer to such a static stored in the patch's own data (`static ALIAS: &T = &X;`, a
//! constant or a new static) is set by the runtime to the running copy after loading, like a cell;
//! the patch is then linked without RELRO, so that data stays writable. A static reached any other
//! way (code reading or writing it in place, a pointer to it in data without a symbol) cannot be
//! redirected; a patch whose live code reaches one is refused, naming it.

mod statics;
mod thread_locals;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::host::HostLocalData;
use crate::object::each::each_at_once;

/// Statics a patch must have its own copy of, or that the runtime keeps in step itself.
const OWN_COPY_EXPECTED: &[&str] = &["__HOT_SLOT", "__HOT_STATE", "__INVENTORY"];

/// The (demangled) name `tracing`'s span and event macros give the callsite static they make
/// beside each span and event (with its metadata, `META`, which points back at it).
const TRACING_CALLSITE: &str = "::__CALLSITE";

/// What redirection did to the objects of a patch.
#[derive(Debug, Default)]
pub struct Redirections {
    /// Mangled names of the host statics every code reference of which now goes through a cell.
    pub redirected: BTreeSet<String>,
    /// Host statics that some reference reaches in a way that cannot be redirected, with why.
    pub unredirectable: BTreeMap<String, String>,
    /// Cells that hold the address of the host static of the same name.
    pub address_cells: BTreeSet<String>,
    /// Cells through which thread-locals are reached: they hold the TLS module id of the
    /// executable, or of the earlier patch that introduced the thread-local.
    pub thread_local_cells: BTreeSet<String>,
    /// Pointers to host statics stored in the patch's own data, which the runtime sets to the
    /// running copies after loading.
    pub data_pointers: Vec<DataPointer>,
}

impl Redirections {
    /// Adds what redirecting a later object did: as if the same `Redirections` had recorded both.
    fn absorb(&mut self, later: Redirections) {
        self.redirected.extend(later.redirected);
        for (name, why) in later.unredirectable {
            self.unredirectable.entry(name).or_insert(why);
        }
        self.address_cells.extend(later.address_cells);
        self.thread_local_cells.extend(later.thread_local_cells);
        self.data_pointers.extend(later.data_pointers);
    }
}

/// A pointer to a host static (`target` plus `addend`) stored `offset` bytes into the patch's
/// static `referrer` (which the host does not share: a constant, or new data). The patch's copy of
/// the target is a cell or unused, so the runtime writes the running copy's address there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPointer {
    pub referrer: String,
    pub offset: u64,
    pub target: String,
    pub addend: i64,
}

/// Whether an object refers (`undefined`, from
/// [`object_symbols`](crate::object::read::object_symbols)) to one of `targets` that
/// another object defines. rustc splits a crate into codegen units, and a private static shared
/// by two of them is a hidden symbol one defines and the other refers to. Redirection rewrites a
/// static and its references together inside one object, so such objects must be merged first.
pub fn reaches_across_objects(undefined: &BTreeSet<String>, targets: &HostLocalData) -> bool {
    undefined
        .iter()
        .any(|name| targets.contains_key(name) && !is_own_copy(name))
}

/// The patch that introduced each of the targets the host does not have, by mangled name.
pub type Origins = BTreeMap<String, String>;

/// Rewrites every object in place so its code reaches the host's private statics through cells
/// (see [`redirect_object`]).
pub fn redirect_objects(
    objects: &[PathBuf],
    targets: &HostLocalData,
    origins: &Origins,
) -> anyhow::Result<Redirections> {
    let each = each_at_once(objects, |object| {
        let mut redirections = Redirections::default();
        redirect_object(object, targets, origins, &mut redirections).map(|()| redirections)
    });
    let mut redirections = Redirections::default();
    for object in each {
        redirections.absorb(object?);
    }
    Ok(redirections)
}

/// Rewrites an object file in place so its code reaches the host's private statics and
/// thread-locals through cells. `targets` are what cells may point at: the host's private
/// statics and thread-locals, and those earlier patches introduced (named in `origins`), which
/// are shared with later patches the same way.
fn redirect_object(
    path: &Path,
    targets: &HostLocalData,
    origins: &Origins,
    out: &mut Redirections,
) -> anyhow::Result<()> {
    let original = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = original.clone();
    statics::redirect(path, &mut bytes, targets, out)?;
    thread_locals::redirect(&mut bytes, targets, origins, out)?;
    if bytes == original {
        return Ok(());
    }
    // rustc hard-links the objects of codegen units it reuses from its incremental cache: writing
    // through the link would edit the cache, and the next build would redirect twice. A new file
    // replaces the link instead.
    let rewritten = path.with_extension("redirected");
    std::fs::write(&rewritten, bytes)
        .with_context(|| format!("writing {}", rewritten.display()))?;
    std::fs::rename(&rewritten, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// Whether a patch must keep its own copy of this static (the runtime keeps hot function slots in
/// step itself, and registrations and `#[hot_state]` descriptors must be the patch's own), or a
/// fresh copy of it is harmless: a [tracing callsite](is_tracing_callsite).
pub fn is_own_copy(mangled: &str) -> bool {
    OWN_COPY_EXPECTED.iter().any(|own| mangled.contains(own)) || is_tracing_callsite(mangled)
}

/// Whether `mangled` is the callsite static of a `tracing` span or event. Its code reads the
/// callsite's fields directly even at opt-level 0 (`mov __CALLSITE(%rip), %rax` loads its
/// metadata pointer) and its metadata points at it from data, so the running copy cannot be
/// shared. A fresh copy is harmless by construction: it carries its own metadata and registers
/// itself with the dispatcher the first time it is reached, which computes its interest from the
/// current subscriber as the running copy's was (and as a fresh build's would be). Patch
/// libraries stay mapped, so the dispatcher's list of callsites never points into freed memory.
pub fn is_tracing_callsite(mangled: &str) -> bool {
    format!("{:#}", rustc_demangle::demangle(mangled)).ends_with(TRACING_CALLSITE)
}

/// The macro that made a static its user did not write and cannot make `pub`: `lazy_static!`
/// keeps its value in a `LAZY` static inside a generated function.
pub fn made_by_macro(mangled: &str) -> Option<&'static str> {
    format!("{:#}", rustc_demangle::demangle(mangled))
        .ends_with("::__stability::LAZY")
        .then_some("lazy_static!")
}

/// A static's name as its user wrote it: a thread-local's hidden inner static is shown as the
/// `thread_local!` it belongs to.
pub fn static_name(mangled: &str) -> String {
    let name = format!("{:#}", rustc_demangle::demangle(mangled));
    match name.find("::{{constant}}") {
        Some(end) => name[..end].to_owned(),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_callsites_get_fresh_copies() {
        // `logic::step::{{closure}}::__CALLSITE` and `logic::step::__CALLSITE`, as rustc mangles them.
        let in_closure =
            "_ZN5logic4step28_$u7b$$u7b$closure$u7d$$u7d$10__CALLSITE17h2c1264e51a0cd083E";
        let in_function = "_ZN5logic4step10__CALLSITE17hc0a4a981d321988eE";
        assert!(is_tracing_callsite(in_closure) && is_own_copy(in_closure));
        assert!(is_tracing_callsite(in_function));
        // Its metadata, and a user's static whose name merely contains the word, are not.
        assert!(!is_tracing_callsite(
            "_ZN5logic4step4META17h2c1264e51a0cd083E"
        ));
        assert!(!is_tracing_callsite(
            "_ZN5logic13MY__CALLSITES17h2c1264e51a0cd083E"
        ));
    }

    #[test]
    fn lazy_static_s_inner_static_is_named_with_its_macro() {
        let inner = "_ZN62_$LT$logic..TABLE$u20$as$u20$core..ops..deref..Deref$GT$5deref11__stability4LAZY17h0123456789abcdefE";
        assert_eq!(made_by_macro(inner), Some("lazy_static!"));
        assert_eq!(made_by_macro("_ZN5logic5TABLE17h0123456789abcdefE"), None);
    }
}
