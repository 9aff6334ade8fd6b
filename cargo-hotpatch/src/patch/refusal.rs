//! Why a change cannot be patched: one variant per reason, each carrying the items it names and
//! rendering the message users see. [`Refusal::kind`] is a stable name for scripts and docs:
//!
//! | kind | the change |
//! | --- | --- |
//! | `unpatchable-crate-changed` | a crate that is neither a library nor a binary (a proc macro) changed |
//! | `main-changed` | the binary's `main`, which runs once when the process starts |
//! | `signature-changed` | a function's signature, with a caller the patch does not replace |
//! | `merged-function-changed` | a function the compiler merged with another that did not change |
//! | `no-symbol-table` | any non-`#[hot]` function, when the base executable was stripped |
//! | `hot-signature-changed` | a hot function's signature |
//! | `entry-attribute-changed` | the attribute macros of a method of a `#[hot]` impl block |
//! | `private-static-would-fork` | code reaching a private static that cannot be redirected |
//! | `introduced-static-would-fork` | code reaching a static an earlier patch introduced |
//! | `layout-changed` | the layout of a type whose values live in the process |
//! | `state-version-kept` | a `#[hot_state]` type's layout, with its version kept |
//! | `held-type-changed` | a type `#[hot_state]` values hold, with the state's version kept |
//!
//! [`Refusal`] is deliberately not a `std::error::Error`: it travels inside
//! [`NotPatchable::NeedsRestart`], which is what callers look for (`downcast_ref::<NotPatchable>`),
//! and `?` on a refusal in a function returning `anyhow::Result` wraps it so.

use std::fmt;

/// Why no patch was built, when that is not a failure of the tool.
#[derive(Debug, thiserror::Error)]
pub enum NotPatchable {
    /// No source differs from the base build.
    #[error("no source file differs from the base build: nothing to patch")]
    NothingChanged,
    /// A change that needs a rebuild and restart.
    #[error("{0}")]
    NeedsRestart(Refusal),
}

impl From<Refusal> for NotPatchable {
    fn from(refusal: Refusal) -> Self {
        NotPatchable::NeedsRestart(refusal)
    }
}

impl From<Refusal> for anyhow::Error {
    fn from(refusal: Refusal) -> Self {
        NotPatchable::NeedsRestart(refusal).into()
    }
}

/// A change that a running process cannot take: the app must be rebuilt and restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A crate that is neither a library nor a binary (a proc macro) changed.
    UnpatchableCrateChanged {
        krate: String,
        crate_types: Vec<String>,
        /// The changed source files.
        files: Vec<String>,
    },
    /// A hot function's signature changed.
    HotSignatureChanged { function: String },
    /// The binary's `main` changed: it runs once, from the start, so no later call takes it.
    MainChanged { function: String },
    /// A function's signature changed (its symbol is another one now) and a caller compiled
    /// against the old one is not replaced by the patch: it would call the old code.
    SignatureChanged {
        function: String,
        caller: String,
        krate: String,
    },
    /// A function changed that the compiler merged with another (one body, one entry, two
    /// names), and the other did not change: their one entry cannot run both.
    MergedFunctionChanged {
        function: String,
        merged_with: String,
    },
    /// Functions other than `#[hot]` ones changed, and the base executable has no symbol table
    /// to find their entries in.
    NoSymbolTable {
        function: String,
        executable: String,
    },
    /// The attribute macros of a method of a `#[hot]` impl block changed: they wrap the method's
    /// entry, which the running process keeps.
    EntryAttributeChanged { function: String },
    /// Patched code reaches private statics of the host that cannot be redirected to the running
    /// copies: a patch would fork them. Holds at least one.
    PrivateStaticWouldFork { statics: Vec<ForkedStatic> },
    /// Patched code reaches a private static an earlier patch introduced, which cannot be
    /// redirected: a new patch would get a fresh copy.
    IntroducedStaticWouldFork {
        /// The static, as its user wrote it.
        name: String,
        /// The hot function whose code reaches it.
        via: String,
    },
    /// The layout of types whose values live in the process changed. Holds at least one.
    LayoutChanged { types: Vec<String> },
    /// A `#[hot_state]` type's layout changed but its version was kept.
    StateVersionKept { state_type: String, version: u32 },
    /// A type held by `#[hot_state]` values changed, and the state type's version was kept.
    HeldTypeChanged { held: String, state_type: String },
}

/// A private static a patch would fork, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkedStatic {
    /// The static, as its user wrote it.
    pub name: String,
    /// The hot function whose code reaches it.
    pub via: String,
    /// Why it cannot be redirected.
    pub why: String,
    /// The macro that made it, when the user did not write it (`lazy_static!`): then it cannot
    /// be made `pub`.
    pub made_by: Option<&'static str>,
}

impl Refusal {
    /// A stable kebab-case name of the reason, for JSON output and documentation.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::UnpatchableCrateChanged { .. } => "unpatchable-crate-changed",
            Refusal::MainChanged { .. } => "main-changed",
            Refusal::SignatureChanged { .. } => "signature-changed",
            Refusal::MergedFunctionChanged { .. } => "merged-function-changed",
            Refusal::NoSymbolTable { .. } => "no-symbol-table",
            Refusal::HotSignatureChanged { .. } => "hot-signature-changed",
            Refusal::EntryAttributeChanged { .. } => "entry-attribute-changed",
            Refusal::PrivateStaticWouldFork { .. } => "private-static-would-fork",
            Refusal::IntroducedStaticWouldFork { .. } => "introduced-static-would-fork",
            Refusal::LayoutChanged { .. } => "layout-changed",
            Refusal::StateVersionKept { .. } => "state-version-kept",
            Refusal::HeldTypeChanged { .. } => "held-type-changed",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::UnpatchableCrateChanged { krate, crate_types, files } => write!(
                f,
                "crate `{krate}` ({}) changed ({}); only library and binary crates can be patched (this one's code runs in the compiler), so the app must be rebuilt and restarted",
                crate_types.join(", "),
                files.join(", ")
            ),
            Refusal::MainChanged { function } => write!(
                f,
                "the code of `{function}` changed (an edit of it, or of code inlined into it); it runs once, when the process starts, so the running process cannot take the change and the app must be rebuilt and restarted (move the code you want to patch into a function `main` calls, marked `#[inline(never)]` if it is small)"
            ),
            Refusal::SignatureChanged { function, caller, krate } => write!(
                f,
                "the signature of `{function}` changed, and `{caller}` (crate `{krate}`), which the patch does not replace, still calls it the old way; the app must be rebuilt and restarted (or change the callers in the same edit)"
            ),
            Refusal::MergedFunctionChanged { function, merged_with } => write!(
                f,
                "`{function}` changed, but the compiler merged it with `{merged_with}` (their code was identical), which did not change; one entry cannot run both, so the app must be rebuilt and restarted"
            ),
            Refusal::NoSymbolTable { function, executable } => write!(
                f,
                "`{function}` changed, but the base executable {executable} has no symbol table to find the running code in (it was stripped); build it with its symbols (`strip = false`) to patch functions that are not #[hot], or rebuild and restart"
            ),
            Refusal::HotSignatureChanged { function } => write!(
                f,
                "the signature of hot function `{function}` changed; a running process cannot switch signatures, so the app must be rebuilt and restarted"
            ),
            Refusal::EntryAttributeChanged { function } => write!(
                f,
                "the attribute macros of hot method `{function}` changed; in a `#[hot]` impl block they wrap the method's entry, which the running process keeps, so a patch cannot change what they do and the app must be rebuilt and restarted (on a `#[hot]` free function they are patched with its body)"
            ),
            Refusal::PrivateStaticWouldFork { statics } => fork_message(f, statics),
            Refusal::IntroducedStaticWouldFork { name, via } => write!(
                f,
                "the patched code of `{via}` uses the private static `{name}`, which an earlier patch introduced and which cannot be redirected to it; a new patch would get a fresh copy of it instead of the running one, so the app must be rebuilt and restarted (or make the static `pub`: public statics are shared)"
            ),
            Refusal::LayoutChanged { types } => {
                let first = types.first().map_or("", String::as_str);
                let others = types.len().saturating_sub(1);
                write!(
                    f,
                    "the layout of type `{first}`{} changed; values of it in the running process have the old layout, so the app must be rebuilt and restarted. ",
                    if others > 0 { format!(" (and {others} more)") } else { String::new() }
                )?;
                keep_with_hot_state(f, first)
            }
            Refusal::StateVersionKept { state_type, version } => write!(
                f,
                "the layout of `#[hot_state]` type `{state_type}` changed but its version stayed {version}; raise it to `#[hot_state(version = {}, previous = ..)]` and write the migration (`impl Migrate<..>`), so live values are migrated (under `cargo hotpatch watch`, changes serde bridges by itself need neither)",
                version + 1
            ),
            Refusal::HeldTypeChanged { held, state_type } => write!(
                f,
                "the layout of `{held}` changed, and values of `#[hot_state]` type `{state_type}` hold it; raise `{state_type}`'s version (with a migration) so its values are rebuilt with the new `{held}`"
            ),
        }
    }
}

/// How to keep the values of plain type `path` across such changes, in one short example.
fn keep_with_hot_state(f: &mut fmt::Formatter<'_>, path: &str) -> fmt::Result {
    let ty = path.rsplit("::").next().unwrap_or(path);
    let ty = ty.split('<').next().unwrap_or(ty);
    let name = ty.to_ascii_uppercase();
    write!(
        f,
        "To keep such values, keep them in `#[hot_state]` storage, whose values are migrated (under `watch`, fields added with a default or as an `Option`, removed or renamed with an alias need nothing else): `#[hot_state(version = 1)] #[derive(Serialize, Deserialize, Default)] pub struct {ty} {{ .. }}` and `static {name}: Singleton<{ty}> = Singleton::new(\"{ty}\", {ty}::default);`, used through `{name}.write()`"
    )
}

/// Names every static the patch would fork: the user must see each one.
fn fork_message(f: &mut fmt::Formatter<'_>, statics: &[ForkedStatic]) -> fmt::Result {
    let Some(ForkedStatic {
        name,
        via,
        why,
        made_by,
    }) = statics.first()
    else {
        return Ok(());
    };
    let others: Vec<String> = statics[1..]
        .iter()
        .map(|ForkedStatic { name, via, why, .. }| format!("`{name}` (used by `{via}`: {why})"))
        .collect();
    let (made, advice) = match made_by {
        Some(by) => (
            format!(" (made by `{by}`)"),
            "Declare the value as a `pub static` yourself (a `std::sync::LazyLock` for a lazy value)",
        ),
        None => (String::new(), "Make it `pub`"),
    };
    write!(
        f,
        "the patched code of `{via}` uses the private static `{name}`{made}, which cannot be redirected to the running process's copy ({why}){}; a patch would silently fork it, so it is refused. {advice} (public statics and thread-locals are shared with patches), then rebuild and restart",
        if others.is_empty() { String::new() } else { format!(" (and {})", others.join(", ")) }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn forked(name: &str, via: &str, why: &str) -> ForkedStatic {
        ForkedStatic {
            name: name.into(),
            via: via.into(),
            why: why.into(),
            made_by: None,
        }
    }

    fn check(refusal: Refusal, kind: &str, wording: &str) {
        assert_eq!(refusal.kind(), kind);
        assert_eq!(refusal.to_string(), wording);
        // What callers print: the refusal inside `NotPatchable`, through anyhow.
        assert_eq!(anyhow::Error::from(refusal).to_string(), wording);
    }

    #[test]
    fn a_changed_proc_macro_crate() {
        check(
            Refusal::UnpatchableCrateChanged {
                krate: "derive".into(),
                crate_types: strings(&["proc-macro"]),
                files: strings(&["/w/derive/src/lib.rs"]),
            },
            "unpatchable-crate-changed",
            "crate `derive` (proc-macro) changed (/w/derive/src/lib.rs); only library and binary crates can be patched (this one's code runs in the compiler), so the app must be rebuilt and restarted",
        );
    }

    #[test]
    fn a_changed_main() {
        check(
            Refusal::MainChanged {
                function: "app::main".into(),
            },
            "main-changed",
            "the code of `app::main` changed (an edit of it, or of code inlined into it); it runs once, when the process starts, so the running process cannot take the change and the app must be rebuilt and restarted (move the code you want to patch into a function `main` calls, marked `#[inline(never)]` if it is small)",
        );
    }

    #[test]
    fn a_changed_signature_with_an_unpatched_caller() {
        check(
            Refusal::SignatureChanged {
                function: "leaf::scale".into(),
                caller: "app::work".into(),
                krate: "app".into(),
            },
            "signature-changed",
            "the signature of `leaf::scale` changed, and `app::work` (crate `app`), which the patch does not replace, still calls it the old way; the app must be rebuilt and restarted (or change the callers in the same edit)",
        );
    }

    #[test]
    fn a_changed_hot_signature() {
        check(
            Refusal::HotSignatureChanged {
                function: "logic::step".into(),
            },
            "hot-signature-changed",
            "the signature of hot function `logic::step` changed; a running process cannot switch signatures, so the app must be rebuilt and restarted",
        );
    }

    #[test]
    fn changed_attribute_macros_of_a_hot_method() {
        check(
            Refusal::EntryAttributeChanged {
                function: "depot::service::Depot::info".into(),
            },
            "entry-attribute-changed",
            "the attribute macros of hot method `depot::service::Depot::info` changed; in a `#[hot]` impl block they wrap the method's entry, which the running process keeps, so a patch cannot change what they do and the app must be rebuilt and restarted (on a `#[hot]` free function they are patched with its body)",
        );
    }

    #[test]
    fn private_statics_that_would_fork() {
        let one = forked(
            "logic::COUNT",
            "logic::step",
            "its code reads or writes it in place instead of through its address",
        );
        check(
            Refusal::PrivateStaticWouldFork {
                statics: vec![one.clone()],
            },
            "private-static-would-fork",
            "the patched code of `logic::step` uses the private static `logic::COUNT`, which cannot be redirected to the running process's copy (its code reads or writes it in place instead of through its address); a patch would silently fork it, so it is refused. Make it `pub` (public statics and thread-locals are shared with patches), then rebuild and restart",
        );
        let two = forked(
            "logic::SEEN",
            "logic::tick",
            "a pointer to it is stored in data",
        );
        check(
            Refusal::PrivateStaticWouldFork {
                statics: vec![one, two],
            },
            "private-static-would-fork",
            "the patched code of `logic::step` uses the private static `logic::COUNT`, which cannot be redirected to the running process's copy (its code reads or writes it in place instead of through its address) (and `logic::SEEN` (used by `logic::tick`: a pointer to it is stored in data)); a patch would silently fork it, so it is refused. Make it `pub` (public statics and thread-locals are shared with patches), then rebuild and restart",
        );
    }

    #[test]
    fn a_static_a_macro_made_that_would_fork() {
        let mut lazy = forked(
            "<logic::TABLE as core::ops::deref::Deref>::deref::__stability::LAZY",
            "logic::step",
            "its code reads or writes it in place instead of through its address",
        );
        lazy.made_by = Some("lazy_static!");
        check(
            Refusal::PrivateStaticWouldFork {
                statics: vec![lazy],
            },
            "private-static-would-fork",
            "the patched code of `logic::step` uses the private static `<logic::TABLE as core::ops::deref::Deref>::deref::__stability::LAZY` (made by `lazy_static!`), which cannot be redirected to the running process's copy (its code reads or writes it in place instead of through its address); a patch would silently fork it, so it is refused. Declare the value as a `pub static` yourself (a `std::sync::LazyLock` for a lazy value) (public statics and thread-locals are shared with patches), then rebuild and restart",
        );
    }

    #[test]
    fn an_introduced_static_that_would_fork() {
        check(
            Refusal::IntroducedStaticWouldFork {
                name: "logic::NEW".into(),
                via: "logic::step".into(),
            },
            "introduced-static-would-fork",
            "the patched code of `logic::step` uses the private static `logic::NEW`, which an earlier patch introduced and which cannot be redirected to it; a new patch would get a fresh copy of it instead of the running one, so the app must be rebuilt and restarted (or make the static `pub`: public statics are shared)",
        );
    }

    #[test]
    fn changed_layouts() {
        check(
            Refusal::LayoutChanged {
                types: strings(&["logic::Order"]),
            },
            "layout-changed",
            "the layout of type `logic::Order` changed; values of it in the running process have the old layout, so the app must be rebuilt and restarted. To keep such values, keep them in `#[hot_state]` storage, whose values are migrated (under `watch`, fields added with a default or as an `Option`, removed or renamed with an alias need nothing else): `#[hot_state(version = 1)] #[derive(Serialize, Deserialize, Default)] pub struct Order { .. }` and `static ORDER: Singleton<Order> = Singleton::new(\"Order\", Order::default);`, used through `ORDER.write()`",
        );
        check(
            Refusal::LayoutChanged {
                types: strings(&["logic::Order", "logic::Line", "logic::Tier"]),
            },
            "layout-changed",
            "the layout of type `logic::Order` (and 2 more) changed; values of it in the running process have the old layout, so the app must be rebuilt and restarted. To keep such values, keep them in `#[hot_state]` storage, whose values are migrated (under `watch`, fields added with a default or as an `Option`, removed or renamed with an alias need nothing else): `#[hot_state(version = 1)] #[derive(Serialize, Deserialize, Default)] pub struct Order { .. }` and `static ORDER: Singleton<Order> = Singleton::new(\"Order\", Order::default);`, used through `ORDER.write()`",
        );
    }

    #[test]
    fn a_kept_state_version() {
        check(
            Refusal::StateVersionKept {
                state_type: "app::Session".into(),
                version: 1,
            },
            "state-version-kept",
            "the layout of `#[hot_state]` type `app::Session` changed but its version stayed 1; raise it to `#[hot_state(version = 2, previous = ..)]` and write the migration (`impl Migrate<..>`), so live values are migrated (under `cargo hotpatch watch`, changes serde bridges by itself need neither)",
        );
    }

    #[test]
    fn a_changed_held_type() {
        check(
            Refusal::HeldTypeChanged {
                held: "app::Tier".into(),
                state_type: "app::Session".into(),
            },
            "held-type-changed",
            "the layout of `app::Tier` changed, and values of `#[hot_state]` type `app::Session` hold it; raise `app::Session`'s version (with a migration) so its values are rebuilt with the new `app::Tier`",
        );
    }
}
