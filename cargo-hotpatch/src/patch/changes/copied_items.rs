//! Items whose code is copied into the crates that use them: generic functions (each crate
//! instantiates its own) and `#[inline]` functions (each crate may compile its own copy). A patch
//! of their crate cannot replace those copies, so a change to one that a dependent crate may hold
//! is refused rather than half applied.
//!
//! The attribute macros of a method of a `#[hot]` impl block (`#[tracing::instrument]`) are
//! another such part: they expand after `#[hot]`, around the method's entry (the wrapper that
//! dispatches through its slot), which the running process keeps, so a change to them is refused
//! too. (On a free function `#[hot]` lets them expand first, into the body a patch replaces.)
//!
//! The base's text of each source file is kept with the base record; the items of the old and new
//! text are compared by their tokens, which ignores formatting and comments.

use std::collections::BTreeMap;

use quote::ToTokens;
use syn::visit::Visit;
use syn::{Attribute, FnArg, Generics, ImplItem, Item, ReturnType, Signature, TraitItem, Type};

use crate::host::{BaseRecord, CrateRecord};

/// Where an item's code is kept besides the crate a patch replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Only in its crate: a patch replaces it.
    InCrate,
    /// Copied into dependent crates: generic or `#[inline]`.
    Copied,
    /// The attribute macros of a method of a `#[hot]` impl block, around its entry.
    InEntry,
}

/// Where each item's code is kept, and its tokens.
type Items = BTreeMap<String, (Held, String)>;

/// Appended to the name of a hot method's entry in [`Items`]: an ordinary method of the same
/// name in another impl block of the type keeps its own entry.
const ENTRY: &str = "#entry";

/// The items of `record` a patch cannot replace whose code changed since the base (the path of
/// each in its crate, and where it is kept).
pub fn changed(base: &BaseRecord, record: &CrateRecord) -> Vec<(String, Held)> {
    let Some(base_dir) = base.executable.parent() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for path in record.changed_sources() {
        let (Some(old), Ok(new)) = (
            record.base_text(base_dir, &path),
            std::fs::read_to_string(&path),
        ) else {
            continue;
        };
        let (Ok(old), Ok(new)) = (syn::parse_file(&old), syn::parse_file(&new)) else {
            continue;
        };
        let (mut before, mut now) = (Items::new(), Items::new());
        collect(&old.items, "", &mut before);
        collect(&new.items, "", &mut now);
        for (name, (held, tokens)) in &now {
            let changed = before.get(name).is_some_and(|(_, old)| old != tokens);
            if changed && *held != Held::InCrate {
                let name = name.strip_suffix(ENTRY).unwrap_or(name);
                out.push((format!("{}::{name}", record.name), *held));
            }
        }
    }
    out
}

fn collect(items: &[Item], prefix: &str, out: &mut Items) {
    for item in items {
        match item {
            Item::Fn(function) if !is_hot(&function.attrs) => {
                let copied = is_generic(&function.sig) || is_inline(&function.attrs);
                out.insert(
                    format!("{prefix}{}", function.sig.ident),
                    (held(copied), function.to_token_stream().to_string()),
                );
            }
            Item::Impl(block) => {
                let hot_block = is_hot(&block.attrs);
                let self_ty = block.self_ty.to_token_stream().to_string().replace(' ', "");
                let generic_block = has_type_params(&block.generics);
                for impl_item in &block.items {
                    if let ImplItem::Fn(method) = impl_item {
                        // In a `#[hot]` block the methods that fit a slot are behind the table;
                        // the others stay ordinary methods and are checked like any.
                        let name = format!("{prefix}{self_ty}::{}", method.sig.ident);
                        if hot_block && fits_a_slot(&method.sig) {
                            out.insert(
                                format!("{name}{ENTRY}"),
                                (Held::InEntry, attribute_macros(&method.attrs)),
                            );
                            continue;
                        }
                        let copied =
                            generic_block || is_generic(&method.sig) || is_inline(&method.attrs);
                        out.insert(name, (held(copied), method.to_token_stream().to_string()));
                    }
                }
            }
            Item::Trait(definition) => {
                // A default method is generic over the implementing type.
                for trait_item in &definition.items {
                    if let TraitItem::Fn(method) = trait_item {
                        if method.default.is_some() {
                            out.insert(
                                format!("{prefix}{}::{}", definition.ident, method.sig.ident),
                                (Held::Copied, method.to_token_stream().to_string()),
                            );
                        }
                    }
                }
            }
            Item::Mod(module) => {
                if let Some((_, items)) = &module.content {
                    collect(items, &format!("{prefix}{}::", module.ident), out);
                }
            }
            _ => {}
        }
    }
}

fn held(copied: bool) -> Held {
    if copied {
        Held::Copied
    } else {
        Held::InCrate
    }
}

/// The attributes the compiler handles itself: the rule of `hotreload-macros`' `order.rs`, which
/// takes every other attribute for an attribute macro.
const BUILTIN: &[&str] = &[
    "allow",
    "warn",
    "deny",
    "forbid",
    "expect",
    "cfg",
    "cfg_attr",
    "doc",
    "inline",
    "cold",
    "must_use",
    "deprecated",
    "track_caller",
    "no_mangle",
    "export_name",
    "link_section",
    "target_feature",
    "instruction_set",
    "optimize",
    "coverage",
    "naked",
    "unsafe",
    "automatically_derived",
    "ignore",
    "should_panic",
    "hot",
];
const TOOLS: &[&str] = &["rustfmt", "clippy", "diagnostic", "rustdoc"];

/// The tokens of a method's attribute macros, in order ("" when it has none).
fn attribute_macros(attrs: &[Attribute]) -> String {
    attrs
        .iter()
        .filter(|attr| {
            let path = attr.path();
            path.segments.first().is_some_and(|first| {
                if path.segments.len() > 1 {
                    !TOOLS.iter().any(|tool| first.ident == tool)
                } else {
                    !BUILTIN.iter().any(|name| first.ident == name)
                }
            })
        })
        .map(|attr| attr.to_token_stream().to_string())
        .collect::<Vec<String>>()
        .join(" ")
}

/// Type or const parameters, written or as `impl Trait` arguments: each caller's crate
/// instantiates its own copy.
fn is_generic(sig: &Signature) -> bool {
    has_type_params(&sig.generics) || takes_impl_trait(sig)
}

fn has_type_params(generics: &Generics) -> bool {
    generics
        .params
        .iter()
        .any(|param| !matches!(param, syn::GenericParam::Lifetime(_)))
}

/// Whether `#[hot]` makes a method of its impl block hot: the rule of `hotreload-macros`'
/// `valid::check_signature` (no `const`, ABI, variadic, type or const parameters, bounded
/// lifetimes, `where` clause or `impl Trait`).
fn fits_a_slot(sig: &Signature) -> bool {
    let bounded_or_generic = sig.generics.params.iter().any(|param| match param {
        syn::GenericParam::Lifetime(lifetime) => !lifetime.bounds.is_empty(),
        _ => true,
    });
    let where_clause = sig
        .generics
        .where_clause
        .as_ref()
        .is_some_and(|clause| !clause.predicates.is_empty());
    let impl_trait = takes_impl_trait(sig)
        || matches!(&sig.output, ReturnType::Type(_, ty) if mentions_impl_trait(ty));
    sig.constness.is_none()
        && sig.abi.is_none()
        && sig.variadic.is_none()
        && !bounded_or_generic
        && !where_clause
        && !impl_trait
}

fn takes_impl_trait(sig: &Signature) -> bool {
    sig.inputs.iter().any(|input| match input {
        FnArg::Typed(typed) => mentions_impl_trait(&typed.ty),
        FnArg::Receiver(_) => false,
    })
}

/// An `impl Trait` anywhere in `ty`, but not in a function pointer type's own signature.
fn mentions_impl_trait(ty: &Type) -> bool {
    let mut finder = ImplTraitFinder(false);
    finder.visit_type(ty);
    finder.0
}

struct ImplTraitFinder(bool);

impl Visit<'_> for ImplTraitFinder {
    fn visit_type_impl_trait(&mut self, _: &syn::TypeImplTrait) {
        self.0 = true;
    }

    fn visit_type_bare_fn(&mut self, _: &syn::TypeBareFn) {
        // Not looked into, as in the macro's own check.
    }
}

fn is_inline(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("inline") && !attr.to_token_stream().to_string().contains("never")
    })
}

fn is_hot(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "hot")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Items {
        let mut out = Items::new();
        collect(&syn::parse_file(text).unwrap().items, "", &mut out);
        out
    }

    #[test]
    fn generic_inline_and_default_methods_are_copied_items() {
        let found = items(
            "fn plain() {} fn generic<T>(t: T) {} #[inline] fn inlined() {} #[inline(never)] fn kept() {}
             #[hot] fn hot_one() {} struct S; impl<T> Wrap<T> { fn get(&self) {} }
             trait Tr { fn default_one(&self) {} fn required(&self); }
             mod inner { pub fn generic_too<T>() {} }",
        );
        let copied: Vec<&str> = found
            .iter()
            .filter(|(_, (held, _))| *held == Held::Copied)
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(
            copied,
            [
                "Tr::default_one",
                "Wrap<T>::get",
                "generic",
                "inlined",
                "inner::generic_too"
            ]
        );
        assert!(!found.contains_key("hot_one"));
        assert_eq!(
            found.get("plain").map(|(held, _)| *held),
            Some(Held::InCrate)
        );
    }

    #[test]
    fn impl_trait_arguments_and_cold_methods_of_hot_blocks_are_copied_items() {
        let found = items(
            "fn takes_impl(x: impl Into<u64>) {} fn returns_impl() -> impl Fn() { || () }
             #[hot] impl Key {
                 fn new(x: impl Into<String>) -> Self { todo!() }
                 #[inline] const fn limit() -> usize { 8 }
                 fn hot_method(&self) {}
                 #[inline] fn inlined_hot(&self) {}
             }",
        );
        let copied: Vec<&str> = found
            .iter()
            .filter(|(_, (held, _))| *held == Held::Copied)
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(copied, ["Key::limit", "Key::new", "takes_impl"]);
        assert_eq!(
            found.get("returns_impl").map(|(held, _)| *held),
            Some(Held::InCrate)
        );
        // The methods of a `#[hot]` block that fit a slot are behind the table, inline or not:
        // only their attribute macros (none here) are kept in their entries.
        for hot in ["Key::hot_method#entry", "Key::inlined_hot#entry"] {
            assert_eq!(found.get(hot), Some(&(Held::InEntry, String::new())));
        }
    }

    #[test]
    fn attribute_macros_of_hot_methods_are_kept_in_their_entries() {
        let found = items(
            "#[hot] impl Depot {
                 /// Docs.
                 #[tracing::instrument(skip(self))]
                 #[inline]
                 fn info(&self) {}
                 #[rustfmt::skip]
                 fn plain(&self) {}
             }
             #[hot] #[tracing::instrument] fn free() {}",
        );
        assert_eq!(
            found.get("Depot::info#entry"),
            Some(&(
                Held::InEntry,
                "# [tracing :: instrument (skip (self))]".to_owned()
            ))
        );
        // No attribute macro; a free function's are expanded into the body a patch replaces.
        assert_eq!(
            found.get("Depot::plain#entry"),
            Some(&(Held::InEntry, String::new()))
        );
        assert!(!found.contains_key("free"));
    }
}
