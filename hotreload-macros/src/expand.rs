//! Turns a checked function or impl block into table-dispatched code.
//!
//! A hot function becomes a wrapper with the user's signature whose body loads the function's
//! slot and calls what it holds; the user's body moves to an "original" function whose address the
//! slot starts with. Free functions keep their original nested in the wrapper; methods keep it in
//! a hidden helper trait implemented for the impl's type, since nested items cannot name `Self`.
//! A method of an impl block that cannot sit in a slot (generic, `impl Trait`, `const fn`, ...)
//! is left as written: an ordinary method beside the hot ones.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, ToTokens};
use syn::{FnArg, Ident, ImplItem, ItemFn, ItemImpl, Pat};

use crate::ast::{self, HotFn, Input};
use crate::attr::{is_hot_attr, Args};
use crate::signature::{self, Context, SlotType};
use crate::{contain, order, valid};

pub fn hot(args: TokenStream, input: TokenStream) -> TokenStream {
    let parsed = match syn::parse2::<Args>(args.clone()) {
        Ok(parsed) => parsed,
        Err(error) => return with_errors(strip_inner_hot(input), vec![error]),
    };
    if !parsed.reordered {
        if let Some(reordered) = syn::parse2::<syn::Item>(input.clone())
            .ok()
            .and_then(|item| order::attribute_macros_first(&args, &item))
        {
            return reordered;
        }
    }
    let args = parsed;
    match Input::parse(input.clone()) {
        Ok(Input::Fn(item)) => expand_fn(args, item),
        Ok(Input::Impl(item)) => expand_impl(args, item),
        Err(error) => with_errors(input, vec![error]),
    }
}

/// The user's item, unchanged, next to the errors: one error, no cascade.
fn with_errors(item: TokenStream, errors: Vec<syn::Error>) -> TokenStream {
    let errors = errors.into_iter().map(|error| error.to_compile_error());
    quote!(#item #(#errors)*)
}

/// Removes `#[hot]` from the methods of an impl block we leave unexpanded, so they do not report
/// errors of their own.
fn strip_inner_hot(input: TokenStream) -> TokenStream {
    match syn::parse2::<ItemImpl>(input.clone()) {
        Ok(mut item) => {
            for impl_item in &mut item.items {
                if let ImplItem::Fn(method) = impl_item {
                    method.attrs.retain(|attr| !is_hot_attr(attr));
                }
            }
            item.into_token_stream()
        }
        Err(_) => input,
    }
}

fn check_send_args(hot: &HotFn, errors: &mut Vec<syn::Error>) {
    if let (Some(tokens), false) = (&hot.args.not_send, hot.is_async()) {
        errors.push(syn::Error::new_spanned(
            tokens,
            "`?Send` only applies to an `async fn`; remove it",
        ));
    }
}

fn expand_fn(args: Args, item: ItemFn) -> TokenStream {
    let hot = HotFn::free(&item, args);
    let mut errors = Vec::new();
    valid::check_not_lone_method(hot.sig, &mut errors);
    valid::check_signature(hot.sig, &mut errors);
    check_send_args(&hot, &mut errors);
    if !errors.is_empty() {
        return with_errors(item.to_token_stream(), errors);
    }
    let slot = slot_type_of(&hot);
    let original_name = original_name(&hot, &slot);
    let original = original_fn(&hot, &slot, &original_name);
    let body = dispatch_body(&hot, &slot, quote!(#original_name));
    wrapper(&hot, quote!({ #original #body }))
}

fn expand_impl(args: Args, item: ItemImpl) -> TokenStream {
    let mut errors = Vec::new();
    valid::check_impl(&item, &mut errors);
    let context = Context::Method {
        self_ty: &item.self_ty,
        trait_path: item.trait_.as_ref().map(|(_, path, _)| path),
    };
    let mut hot_methods = Vec::new();
    let mut is_hot = Vec::new();
    let mut cold_reasons = Vec::new();
    for method in ast::methods(&item) {
        let (method_args, marked_hot) = Args::of_method(&args, method, &mut errors);
        // A method that cannot sit in a slot stays an ordinary method, unless its own `#[hot]`
        // asks for it to be hot: then it is refused like a lone function.
        let mut reasons = Vec::new();
        valid::check_signature(&method.sig, &mut reasons);
        is_hot.push(reasons.is_empty());
        if !reasons.is_empty() {
            if marked_hot {
                errors.extend(reasons);
            } else {
                cold_reasons.extend(reasons);
            }
            continue;
        }
        let hot = HotFn::method(method, context, method_args);
        check_send_args(&hot, &mut errors);
        hot_methods.push(hot);
    }
    if hot_methods.is_empty() && errors.is_empty() {
        errors.push(valid::nothing_hot(&item, cold_reasons.is_empty()));
        errors.extend(cold_reasons);
    }
    if !errors.is_empty() {
        return with_errors(strip_inner_hot(item.to_token_stream()), errors);
    }

    let self_ty = &item.self_ty;
    let helper = helper_trait_name(&item);
    let mut declarations = Vec::new();
    let mut originals = Vec::new();
    let mut wrappers = Vec::new();
    for hot in &hot_methods {
        let slot = slot_type_of(hot);
        let original_name = original_name(hot, &slot);
        declarations.push(original_signature(hot, &slot, &original_name, false));
        originals.push(original_fn(hot, &slot, &original_name));
        let body = dispatch_body(hot, &slot, quote!(<#self_ty as #helper>::#original_name));
        wrappers.push(wrapper(hot, quote!({ #body })));
    }

    let mut out_impl = item.clone();
    let mut wrappers = wrappers.into_iter();
    let methods = out_impl
        .items
        .iter_mut()
        .filter(|impl_item| matches!(impl_item, ImplItem::Fn(_)));
    for (impl_item, _) in methods.zip(is_hot).filter(|(_, hot)| *hot) {
        if let Some(wrapper) = wrappers.next() {
            *impl_item = ImplItem::Verbatim(wrapper);
        }
    }
    quote! {
        #out_impl

        #[doc(hidden)]
        #[allow(non_camel_case_types, clippy::all, clippy::pedantic, unused)]
        trait #helper {
            #(#declarations;)*
        }

        #[allow(clippy::all, clippy::pedantic, unused_mut)]
        impl #helper for #self_ty {
            #(#originals)*
        }
    }
}

/// The original's name carries the slot type's fingerprint, so `cargo hotpatch` can tell from
/// the symbols alone that a hot function's signature changed.
fn original_name(hot: &HotFn, slot: &SlotType) -> Ident {
    let fingerprint = signature::fingerprint(&slot.fn_type);
    match hot.context {
        Context::Free => format_ident!("__hot_original_{:016x}", fingerprint),
        Context::Method { .. } => {
            format_ident!("__hot_original_{}_{:016x}", hot.sig.ident, fingerprint)
        }
    }
}

/// A name for the helper trait holding an impl block's original methods, unique in its module
/// (no two impl blocks of one type have a method of the same name) and stable while methods are
/// added or removed after the first.
fn helper_trait_name(item: &ItemImpl) -> Ident {
    let mut text = item.self_ty.to_token_stream().to_string();
    if let Some((_, path, _)) = &item.trait_ {
        text.push_str(" as ");
        text.push_str(&path.to_token_stream().to_string());
    }
    if let Some(first) = ast::methods(item).next() {
        text.push(' ');
        text.push_str(&first.sig.ident.to_string());
    }
    let hash = signature::fingerprint(&text.parse().unwrap_or_default());
    format_ident!("__HotOriginals_{:016x}", hash)
}

fn slot_type_of(hot: &HotFn) -> SlotType {
    let future = hot.is_async().then(|| {
        if hot.args.not_send.is_some() {
            quote!(::hotreload_runtime::__private::HotLocalFuture)
        } else {
            quote!(::hotreload_runtime::__private::HotFuture)
        }
    });
    signature::slot_type(hot.sig, hot.context, future.as_ref())
}

/// Attributes that must hold for the original's body too (lints, `cfg`).
fn body_attrs<'a>(hot: &'a HotFn) -> impl Iterator<Item = &'a syn::Attribute> {
    hot.attrs.iter().filter(|attr| {
        let path = attr.path();
        [
            "allow", "warn", "deny", "forbid", "expect", "cfg", "cfg_attr",
        ]
        .iter()
        .any(|name| path.is_ident(name))
    })
}

fn arg_name(index: usize) -> Ident {
    format_ident!("__hot_arg{}", index)
}

/// The original's signature: concrete types, named lifetimes, arguments as `__hot_argN`.
fn original_signature(hot: &HotFn, slot: &SlotType, name: &Ident, definition: bool) -> TokenStream {
    let unsafety = &hot.sig.unsafety;
    let lifetimes = &slot.lifetimes;
    let generics = if lifetimes.is_empty() {
        quote!()
    } else {
        quote!(<#(#lifetimes),*>)
    };
    let receiver_mut = if definition { slot.receiver_mut } else { None };
    let receiver = slot
        .receiver
        .iter()
        .map(|receiver| quote!(#receiver_mut #receiver));
    let args = slot.args.iter().enumerate().map(|(index, ty)| {
        let name = arg_name(index);
        quote!(#name: #ty)
    });
    let returned = &slot.returned;
    quote!(#unsafety fn #name #generics (#(#receiver,)* #(#args),*) -> #returned)
}

/// The function holding the user's body, whose address the slot starts with.
fn original_fn(hot: &HotFn, slot: &SlotType, name: &Ident) -> TokenStream {
    let signature = original_signature(hot, slot, name, true);
    let attrs = body_attrs(hot);
    let bindings = hot
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => Some(&typed.pat),
            FnArg::Receiver(_) => None,
        })
        .enumerate()
        .map(|(index, pat)| {
            let name = arg_name(index);
            quote!(let #pat = #name;)
        });
    let block = hot.block;
    let output = &slot.output;
    let body = if hot.is_async() {
        // Like an `async fn`: every argument moves into the future, `return` leaves the future.
        let keep_self = slot
            .receiver
            .as_ref()
            .map(|_| quote!(let __hot_self = &self; let _ = __hot_self;));
        let erase = if hot.args.not_send.is_some() {
            quote!(erase_local_future_lifetime)
        } else {
            quote!(erase_future_lifetime)
        };
        quote!({
            let __hot_future = ::std::boxed::Box::pin(async move {
                #keep_self
                #(#bindings)*
                let __hot_return: #output = #block;
                #[allow(unreachable_code)]
                __hot_return
            });
            // SAFETY: the wrapper awaits this future at once, inside its own future, which
            // borrows everything this one does; the lifetime is erased only to fit the slot type.
            unsafe { ::hotreload_runtime::__private::#erase(__hot_future) }
        })
    } else {
        quote!({
            #(#bindings)*
            #block
        })
    };
    quote! {
        #(#attrs)*
        #[allow(clippy::all, clippy::pedantic, unused_mut)]
        #signature #body
    }
}

/// The wrapper's body: the slot and its registration, then the call through the slot.
fn dispatch_body(hot: &HotFn, slot: &SlotType, original: TokenStream) -> TokenStream {
    let fn_type = &slot.fn_type;
    let signature_text = normalize(&fn_type.to_string());
    let fingerprint = signature::fingerprint(fn_type);
    let name = hot.sig.ident.to_string();
    let (self_ty, trait_name) = match hot.context {
        Context::Free => (
            quote!(::core::option::Option::None),
            quote!(::core::option::Option::None),
        ),
        Context::Method {
            self_ty,
            trait_path,
        } => {
            let self_ty = normalize(&self_ty.to_token_stream().to_string());
            let trait_name = match trait_path {
                Some(path) => {
                    let text = normalize(&path.to_token_stream().to_string());
                    quote!(::core::option::Option::Some(#text))
                }
                None => quote!(::core::option::Option::None),
            };
            (quote!(::core::option::Option::Some(#self_ty)), trait_name)
        }
    };
    let is_async = hot.is_async();
    let call_args = call_args(hot);
    let call = quote!(__hot_code(#(#call_args),*));
    let call = if hot.sig.unsafety.is_some() {
        quote!(unsafe { #call })
    } else {
        call
    };
    let call = if is_async { quote!(#call.await) } else { call };
    let (contained, contained_address) = contain::contained(hot, slot, &original);
    quote! {
        type __HotFn = #fn_type;
        static __HOT_SLOT: ::hotreload_runtime::__private::HotSlot =
            ::hotreload_runtime::__private::HotSlot::new(#original as __HotFn as *const ());
        ::hotreload_runtime::__private::inventory::submit! {
            ::hotreload_runtime::__private::HotFunction::new(
                ::hotreload_runtime::__private::HotKey {
                    module_path: ::core::module_path!(),
                    self_ty: #self_ty,
                    trait_name: #trait_name,
                    name: #name,
                },
                #original as __HotFn as *const (),
                #contained_address,
                #signature_text,
                #fingerprint,
                || ::core::any::TypeId::of::<__HotFn>(),
                &__HOT_SLOT,
                #is_async,
            )
        }
        #contained
        // SAFETY: only the table writes the slot, and only function pointers of type `__HotFn`.
        let __hot_code = unsafe {
            ::core::mem::transmute::<*const (), __HotFn>(__HOT_SLOT.get())
        };
        #call
    }
}

/// The wrapper's arguments, in order, as passed to the slot's function.
fn call_args(hot: &HotFn) -> Vec<TokenStream> {
    let mut typed = 0;
    hot.sig
        .inputs
        .iter()
        .map(|input| match input {
            FnArg::Receiver(_) => quote!(self),
            FnArg::Typed(pat_type) => {
                let name = wrapper_arg_name(&pat_type.pat, typed);
                typed += 1;
                quote!(#name)
            }
        })
        .collect()
}

/// A plain `name` (also `mut name`, `ref name`) keeps its name; any other pattern gets one.
fn wrapper_arg_name(pat: &Pat, index: usize) -> Ident {
    match pat {
        Pat::Ident(pat_ident) if pat_ident.subpat.is_none() => pat_ident.ident.clone(),
        _ => arg_name(index),
    }
}

/// The user's item with its body replaced by `body`; it reads the same in rustdoc.
fn wrapper(hot: &HotFn, body: TokenStream) -> TokenStream {
    let mut sig = hot.sig.clone();
    let mut typed = 0;
    for input in &mut sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                // The wrapper only passes `self` on: `mut self` needs no `mut` there.
                if receiver.reference.is_none() {
                    receiver.mutability = None;
                }
            }
            FnArg::Typed(pat_type) => {
                let name = wrapper_arg_name(&pat_type.pat, typed);
                typed += 1;
                *pat_type.pat = syn::parse_quote!(#name);
            }
        }
    }
    let attrs = hot.attrs.iter().filter(|attr| !is_hot_attr(attr));
    let has_inline = hot.attrs.iter().any(|attr| attr.path().is_ident("inline"));
    let inline = (!has_inline).then(|| quote!(#[inline]));
    let vis = hot.vis;
    quote! {
        #(#attrs)*
        #inline
        #vis #sig #body
    }
}

/// Token text without the spaces `to_string` puts around punctuation: `a::B<'c>`.
fn normalize(text: &str) -> String {
    let mut out = text
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" ::", "::")
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" <", "<")
        .replace(" > ", "> ")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace("& ", "&")
        .replace("' ", "'");
    out = out.replace("( ", "(").replace(" )", ")");
    out
}
