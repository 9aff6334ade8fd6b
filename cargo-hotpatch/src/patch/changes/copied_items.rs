//! Items whose code is copied into the crates that use them: generic functions (each crate
//! instantiates its own) and `#[inline]` functions (each crate may compile its own copy). A patch
//! of their crate cannot replace those copies, so a change to one that a dependent crate may hold
//! is refused rather than half applied.
//!
//! The base's text of each source file is kept with the base record; the items of the old and new
//! text are compared by their tokens, which ignores formatting and comments.

use std::collections::BTreeMap;

use quote::ToTokens;
use syn::{Attribute, Generics, ImplItem, Item, TraitItem};

use crate::host::{BaseRecord, CrateRecord};

/// Whether an item's code is copied into dependents, and its tokens.
type Items = BTreeMap<String, (bool, String)>;

/// The generic and `#[inline]` functions of `record` whose code changed since the base, as
/// `(path in the file, file)`.
pub fn changed(base: &BaseRecord, record: &CrateRecord) -> Vec<String> {
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
        for (name, (copied, tokens)) in &now {
            let changed = before.get(name).is_some_and(|(_, old)| old != tokens);
            if *copied && changed {
                out.push(format!("{}::{name}", record.name));
            }
        }
    }
    out
}

fn collect(items: &[Item], prefix: &str, out: &mut Items) {
    for item in items {
        match item {
            Item::Fn(function) if !is_hot(&function.attrs) => {
                let copied = is_generic(&function.sig.generics) || is_inline(&function.attrs);
                out.insert(
                    format!("{prefix}{}", function.sig.ident),
                    (copied, function.to_token_stream().to_string()),
                );
            }
            Item::Impl(block) if !is_hot(&block.attrs) => {
                let self_ty = block.self_ty.to_token_stream().to_string().replace(' ', "");
                let generic_block = is_generic(&block.generics);
                for impl_item in &block.items {
                    if let ImplItem::Fn(method) = impl_item {
                        let copied = generic_block
                            || is_generic(&method.sig.generics)
                            || is_inline(&method.attrs);
                        out.insert(
                            format!("{prefix}{self_ty}::{}", method.sig.ident),
                            (copied, method.to_token_stream().to_string()),
                        );
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
                                (true, method.to_token_stream().to_string()),
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

fn is_generic(generics: &Generics) -> bool {
    generics
        .params
        .iter()
        .any(|param| !matches!(param, syn::GenericParam::Lifetime(_)))
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
            .filter(|(_, (copied, _))| *copied)
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
        assert_eq!(found.get("plain").map(|(copied, _)| *copied), Some(false));
    }
}
