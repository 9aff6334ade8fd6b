//! Attribute macros written below `#[hot]` (`#[hot] #[tracing::instrument] fn f()`) expand after
//! it, on what it generates: left as they are, they would wrap the entry that dispatches through
//! the slot, which a running process keeps, instead of the body a patch replaces, and a patch of
//! them would silently not take effect. So `#[hot]` first hands the item back with those
//! attributes above a second `#[hot]`: they expand first, as if written above it, and the order of
//! the attributes never changes what a patch does.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, Item};

/// Attributes the compiler itself handles on functions and impl blocks: none of them is a macro
/// that rewrites the item. `cargo-hotpatch`'s `copied_items.rs` keeps the same list (a proc-macro
/// crate cannot share a constant): change both.
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

/// Namespaces of tool attributes, which are inert.
const TOOLS: &[&str] = &["rustfmt", "clippy", "diagnostic", "rustdoc"];

/// Whether `attr` is an attribute macro (anything the compiler does not handle itself).
pub fn is_attribute_macro(attr: &Attribute) -> bool {
    let path = attr.path();
    let Some(first) = path.segments.first() else {
        return false;
    };
    if path.segments.len() > 1 {
        return !TOOLS.iter().any(|tool| first.ident == tool);
    }
    !BUILTIN.iter().any(|name| first.ident == name)
}

/// The item again with its attribute macros above `#[hot]` (marked as already reordered, so an
/// attribute wrongly taken for a macro cannot make this loop), or `None` when it has none.
pub fn attribute_macros_first(args: &TokenStream, item: &Item) -> Option<TokenStream> {
    let mut item = item.clone();
    let attrs = match &mut item {
        Item::Fn(function) => &mut function.attrs,
        Item::Impl(block) => &mut block.attrs,
        _ => return None,
    };
    let (macros, others): (Vec<Attribute>, Vec<Attribute>) =
        attrs.drain(..).partition(is_attribute_macro);
    if macros.is_empty() {
        return None;
    }
    *attrs = others;
    let args = if args.is_empty() {
        quote!(__reordered)
    } else {
        quote!(#args, __reordered)
    };
    Some(quote! {
        #(#macros)*
        #[::hotreload_runtime::hot(#args)]
        #item
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(tokens: TokenStream) -> Attribute {
        syn::parse_quote!(#[#tokens])
    }

    #[test]
    fn macros_are_told_from_builtin_and_tool_attributes() {
        for builtin in [
            quote!(inline),
            quote!(allow(unused)),
            quote!(doc = "x"),
            quote!(cfg(test)),
            quote!(rustfmt::skip),
            quote!(clippy::too_many_lines),
            quote!(hot(?Send)),
        ] {
            assert!(!is_attribute_macro(&attr(builtin.clone())), "{builtin}");
        }
        for attribute_macro in [
            quote!(tracing::instrument(level = "info")),
            quote!(instrument),
            quote!(tokio::main),
            quote!(test),
        ] {
            assert!(
                is_attribute_macro(&attr(attribute_macro.clone())),
                "{attribute_macro}"
            );
        }
    }

    #[test]
    fn attribute_macros_move_above_a_second_hot() {
        let item: Item = syn::parse_quote! {
            /// Docs.
            #[tracing::instrument(skip(a))]
            #[inline]
            pub fn f(a: u32) -> u32 { a }
        };
        let out = attribute_macros_first(&quote!(?Send), &item).expect("reordered");
        let expected = quote! {
            #[tracing::instrument(skip(a))]
            #[::hotreload_runtime::hot(?Send, __reordered)]
            /// Docs.
            #[inline]
            pub fn f(a: u32) -> u32 { a }
        };
        assert_eq!(out.to_string(), expected.to_string());
        let plain: Item = syn::parse_quote!(
            #[inline]
            fn g() {}
        );
        assert!(attribute_macros_first(&quote!(), &plain).is_none());
    }
}
