//! Turns a function's signature into the function pointer type its table slot holds.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::visit_mut::{self, VisitMut};
use syn::{FnArg, GenericParam, Lifetime, Path, ReturnType, Signature, Type};

/// Where a hot function is defined.
#[derive(Clone, Copy)]
pub enum Context<'a> {
    Free,
    Method {
        self_ty: &'a Type,
        trait_path: Option<&'a Path>,
    },
}

/// The slot's function pointer type, without `Self` and with every lifetime named.
pub struct SlotType {
    /// `for<...> fn(...) -> ...`
    pub fn_type: TokenStream,
    /// The lifetimes the function pointer type binds, for the original's generics.
    pub lifetimes: Vec<Lifetime>,
    /// The receiver as the original method declares it, lifetimes named, without `mut`.
    pub receiver: Option<TokenStream>,
    /// The receiver's type (`&'a Type`, `Type`, ...), lifetimes named and `Self` replaced.
    pub receiver_ty: Option<Type>,
    /// The `mut` of a by-value receiver (`mut self`), for the original's definition.
    pub receiver_mut: Option<syn::Token![mut]>,
    /// The concrete types of the other arguments.
    pub args: Vec<Type>,
    /// The concrete return type (of the future, for an `async fn`).
    pub output: Type,
    /// What the original returns: `output`, or the boxed future for an `async fn`.
    pub returned: TokenStream,
}

pub fn slot_type(sig: &Signature, context: Context, future: Option<&TokenStream>) -> SlotType {
    let mut namer = LifetimeNamer::default();
    let mut inputs = Vec::with_capacity(sig.inputs.len());
    let mut args = Vec::with_capacity(sig.inputs.len());
    let mut receiver_decl = None;
    let mut receiver_lifetime = None;
    let mut receiver_mut = None;
    let mut receiver_ty = None;
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                let SlotReceiver {
                    mut ty,
                    decl,
                    lifetime,
                    mutability,
                } = slot_receiver(receiver, &mut namer);
                receiver_decl = Some(decl);
                receiver_lifetime = lifetime;
                receiver_mut = mutability;
                replace_self(&mut ty, context);
                receiver_ty = Some(ty.clone());
                inputs.push(ty);
            }
            FnArg::Typed(typed) => {
                let mut ty = (*typed.ty).clone();
                namer.visit_type_mut(&mut ty);
                replace_self(&mut ty, context);
                inputs.push(ty.clone());
                args.push(ty);
            }
        }
    }
    if let Some(lifetime) = &receiver_lifetime {
        namer.introduce(lifetime);
    }

    let mut output: Type = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    // Lifetime elision: an elided output lifetime is the receiver's, else the only input one.
    let elided_output = receiver_lifetime.or_else(|| match namer.all.as_slice() {
        [only] => Some(only.clone()),
        _ => None,
    });
    if let Some(lifetime) = elided_output {
        ElidedOutput { lifetime }.visit_type_mut(&mut output);
    }
    replace_self(&mut output, context);

    let bound = bound_lifetimes(sig, &namer);
    let for_lifetimes = if bound.is_empty() {
        quote!()
    } else {
        quote!(for<#(#bound),*>)
    };
    let unsafety = &sig.unsafety;
    let returned = match future {
        Some(future) => quote!(#future<#output>),
        None => output.to_token_stream(),
    };
    let fn_type = quote!(#for_lifetimes #unsafety fn(#(#inputs),*) -> #returned);
    SlotType {
        fn_type,
        lifetimes: bound,
        receiver: receiver_decl,
        receiver_ty,
        receiver_mut,
        args,
        output,
        returned,
    }
}

/// A method's receiver as the slot and the original see it.
struct SlotReceiver {
    /// Its type, lifetimes named (`Self` not replaced yet).
    ty: Type,
    /// How the original declares it.
    decl: TokenStream,
    /// The lifetime of a reference receiver (`&self`, `&mut self`).
    lifetime: Option<Lifetime>,
    /// The `mut` of a by-value receiver.
    mutability: Option<syn::Token![mut]>,
}

fn slot_receiver(receiver: &syn::Receiver, namer: &mut LifetimeNamer) -> SlotReceiver {
    let mut ty = (*receiver.ty).clone();
    if let Some((and, lifetime)) = &receiver.reference {
        let lifetime = lifetime
            .clone()
            .unwrap_or_else(|| Lifetime::new("'__hot_self", Span::call_site()));
        let mutability = &receiver.mutability;
        let decl = quote!(#and #lifetime #mutability self);
        if let Type::Reference(reference) = &mut ty {
            reference.lifetime = Some(lifetime.clone());
        }
        SlotReceiver {
            ty,
            decl,
            lifetime: Some(lifetime),
            mutability: None,
        }
    } else if receiver.colon_token.is_some() {
        namer.visit_type_mut(&mut ty);
        let decl = quote!(self: #ty);
        SlotReceiver {
            ty,
            decl,
            lifetime: None,
            mutability: receiver.mutability,
        }
    } else {
        SlotReceiver {
            ty,
            decl: quote!(self),
            lifetime: None,
            mutability: receiver.mutability,
        }
    }
}

/// The lifetimes the slot's `for<...>` binds: the function's own, then those named for elided ones.
fn bound_lifetimes(sig: &Signature, namer: &LifetimeNamer) -> Vec<Lifetime> {
    let mut bound: Vec<Lifetime> = sig
        .generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Lifetime(def) => Some(def.lifetime.clone()),
            _ => None,
        })
        .collect();
    for lifetime in &namer.introduced {
        if !bound.contains(lifetime) {
            bound.push(lifetime.clone());
        }
    }
    bound
}

/// Names every elided lifetime of the inputs (`&T`, `'_`) and remembers all input lifetimes.
#[derive(Default)]
struct LifetimeNamer {
    introduced: Vec<Lifetime>,
    all: Vec<Lifetime>,
}

impl LifetimeNamer {
    fn fresh(&mut self) -> Lifetime {
        let lifetime = Lifetime::new(
            &format!("'__hot_{}", self.introduced.len()),
            Span::call_site(),
        );
        self.introduce(&lifetime);
        lifetime
    }

    fn introduce(&mut self, lifetime: &Lifetime) {
        if !self.introduced.contains(lifetime) {
            self.introduced.push(lifetime.clone());
        }
        self.seen(lifetime);
    }

    fn seen(&mut self, lifetime: &Lifetime) {
        if lifetime.ident != "static" && !self.all.contains(lifetime) {
            self.all.push(lifetime.clone());
        }
    }
}

impl VisitMut for LifetimeNamer {
    fn visit_type_reference_mut(&mut self, reference: &mut syn::TypeReference) {
        match &reference.lifetime {
            Some(lifetime) if lifetime.ident != "_" => self.seen(&lifetime.clone()),
            _ => reference.lifetime = Some(self.fresh()),
        }
        visit_mut::visit_type_reference_mut(self, reference);
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "_" {
            *lifetime = self.fresh();
        } else {
            self.seen(&lifetime.clone());
        }
    }

    fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {
        // A function pointer argument has its own elision scope.
    }
}

/// Gives elided output lifetimes their elision-rule lifetime.
struct ElidedOutput {
    lifetime: Lifetime,
}

impl VisitMut for ElidedOutput {
    fn visit_type_reference_mut(&mut self, reference: &mut syn::TypeReference) {
        if reference.lifetime.as_ref().is_none_or(|l| l.ident == "_") {
            reference.lifetime = Some(self.lifetime.clone());
        }
        visit_mut::visit_type_reference_mut(self, reference);
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "_" {
            *lifetime = self.lifetime.clone();
        }
    }

    fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {}
}

/// Replaces `Self` with the impl's type, and `Self::Assoc` with `<Type as Trait>::Assoc`.
pub fn replace_self(ty: &mut Type, context: Context) {
    if let Context::Method {
        self_ty,
        trait_path,
    } = context
    {
        SelfReplacer {
            self_ty,
            trait_path,
        }
        .visit_type_mut(ty);
    }
}

struct SelfReplacer<'a> {
    self_ty: &'a Type,
    trait_path: Option<&'a Path>,
}

impl VisitMut for SelfReplacer<'_> {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(type_path) = ty {
            let starts_with_self = type_path.qself.is_none()
                && type_path
                    .path
                    .segments
                    .first()
                    .is_some_and(|segment| segment.ident == "Self");
            if starts_with_self {
                let self_ty = self.self_ty;
                let rest: Vec<_> = type_path.path.segments.iter().skip(1).collect();
                *ty = match (rest.is_empty(), self.trait_path) {
                    (true, _) => self_ty.clone(),
                    (false, Some(trait_path)) => {
                        syn::parse_quote!(<#self_ty as #trait_path>::#(#rest)::*)
                    }
                    (false, None) => syn::parse_quote!(<#self_ty>::#(#rest)::*),
                };
                return;
            }
        }
        visit_mut::visit_type_mut(self, ty);
    }
}

/// FNV-1a of the slot type as written: equal for equal signatures, stable across builds.
pub fn fingerprint(fn_type: &TokenStream) -> u64 {
    let text = fn_type.to_string();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
