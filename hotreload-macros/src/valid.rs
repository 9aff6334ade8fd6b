//! Checks that a function can sit in a table slot; reports what cannot, on the user's tokens.

use quote::quote;
use syn::visit::{self, Visit};
use syn::{FnArg, GenericParam, ItemImpl, ReturnType, Signature};

const MOVE_OUT: &str = "make it non-generic, or remove #[hot] and call it from a #[hot] function";

/// Every reason `sig` cannot be hot, as errors on the offending tokens. A method of a `#[hot]`
/// block with any of them stays an ordinary method; `cargo hotpatch`'s `copied_items::fits_a_slot`
/// follows the same rule, so keep the two in step.
pub fn check_signature(sig: &Signature, errors: &mut Vec<syn::Error>) {
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            "a `const fn` cannot be #[hot]: calls through the table cannot run at compile time; remove `const` or #[hot]",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "an `extern` function cannot be #[hot]: it is called by foreign code that does not go through the table; make a Rust function #[hot] and call it from the extern one",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "a variadic function cannot be #[hot]",
        ));
    }
    for param in &sig.generics.params {
        match param {
            GenericParam::Type(param) => errors.push(syn::Error::new_spanned(
                param,
                format!("a generic function cannot be #[hot]: each instantiation is separate code and has no single table slot; {MOVE_OUT}"),
            )),
            GenericParam::Const(param) => errors.push(syn::Error::new_spanned(
                param,
                format!("a function with const parameters cannot be #[hot]: each instantiation is separate code and has no single table slot; {MOVE_OUT}"),
            )),
            GenericParam::Lifetime(param) if !param.bounds.is_empty() => {
                errors.push(syn::Error::new_spanned(
                    param,
                    "a bounded lifetime parameter cannot be #[hot]: the table holds one function pointer type for every lifetime; remove the bound",
                ))
            }
            GenericParam::Lifetime(_) => {}
        }
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        if !where_clause.predicates.is_empty() {
            errors.push(syn::Error::new_spanned(
                where_clause,
                "a `where` clause cannot be #[hot]: the table holds one function pointer type; remove it",
            ));
        }
    }
    let mut finder = ImplTraitFinder::default();
    for input in &sig.inputs {
        if let FnArg::Typed(typed) = input {
            finder.visit_type(&typed.ty);
        }
    }
    for found in finder.found.drain(..) {
        errors.push(syn::Error::new_spanned(
            found,
            "`impl Trait` in argument position makes the function generic, so it cannot be #[hot]; take `&dyn Trait` or a concrete type instead",
        ));
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        finder.visit_type(ty);
        for found in finder.found.drain(..) {
            errors.push(syn::Error::new_spanned(
                found,
                "a #[hot] function cannot return `impl Trait`: the table needs a nameable type; return a concrete type or `Box<dyn Trait>`",
            ));
        }
    }
}

/// A method seen on its own: `#[hot]` must be on its `impl` block, which names `Self`.
pub fn check_not_lone_method(sig: &Signature, errors: &mut Vec<syn::Error>) {
    let receiver = sig.inputs.iter().find_map(|input| match input {
        FnArg::Receiver(receiver) => Some(receiver),
        FnArg::Typed(_) => None,
    });
    let mentions_self = sig
        .inputs
        .iter()
        .any(|input| matches!(input, FnArg::Typed(t) if mentions_self_type(&t.ty)))
        || matches!(&sig.output, ReturnType::Type(_, ty) if mentions_self_type(ty));
    if receiver.is_some() || mentions_self {
        let message = "#[hot] on a method belongs on its `impl` block (`#[hot] impl Type { ... }`), which names the type the table slot needs; every method of that block that can sit in a slot becomes hot";
        match receiver {
            Some(receiver) => errors.push(syn::Error::new_spanned(receiver, message)),
            None => errors.push(syn::Error::new_spanned(&sig.ident, message)),
        }
    }
}

/// What the `impl` block itself must satisfy.
pub fn check_impl(item: &ItemImpl, errors: &mut Vec<syn::Error>) {
    if !item.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &item.generics,
            "a generic impl block cannot be #[hot]: each instantiation is separate code and has no single table slot; move the methods to an impl for a concrete type",
        ));
    }
    if let Some(defaultness) = &item.defaultness {
        errors.push(syn::Error::new_spanned(
            defaultness,
            "a `default impl` cannot be #[hot]",
        ));
    }
    if let Some((Some(bang), _, _)) = &item.trait_ {
        errors.push(syn::Error::new_spanned(
            bang,
            "a negative impl has no methods to make #[hot]",
        ));
    }
}

/// A `#[hot]` impl block none of whose methods can be hot: the attribute would do nothing.
pub fn nothing_hot(item: &ItemImpl, no_methods: bool) -> syn::Error {
    let (keyword, self_ty) = (&item.impl_token, &item.self_ty);
    let head = quote!(#keyword #self_ty);
    let message = if no_methods {
        "this impl block has no methods to make #[hot]; remove #[hot]"
    } else {
        "no method of this impl block can be #[hot] (the reasons follow); remove #[hot] from the block, or make a method fit a table slot"
    };
    syn::Error::new_spanned(head, message)
}

fn mentions_self_type(ty: &syn::Type) -> bool {
    struct Finder(bool);
    impl Visit<'_> for Finder {
        fn visit_path_segment(&mut self, segment: &syn::PathSegment) {
            if segment.ident == "Self" {
                self.0 = true;
            }
            visit::visit_path_segment(self, segment);
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}

#[derive(Default)]
struct ImplTraitFinder {
    found: Vec<syn::TypeImplTrait>,
}

impl Visit<'_> for ImplTraitFinder {
    fn visit_type_impl_trait(&mut self, ty: &syn::TypeImplTrait) {
        self.found.push(ty.clone());
    }

    fn visit_type_bare_fn(&mut self, _: &syn::TypeBareFn) {}
}
