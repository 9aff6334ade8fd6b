//! The model of what `#[hot]` was put on, keeping references to the user's tokens, and
//! [`item_head`], which both attributes point their errors at.

use proc_macro2::TokenStream;
use syn::{Attribute, Block, ImplItem, ImplItemFn, Item, ItemFn, ItemImpl, Signature, Visibility};

use crate::attr::Args;
use crate::signature::Context;

/// The item under `#[hot]`.
pub enum Input {
    Fn(ItemFn),
    Impl(ItemImpl),
}

impl Input {
    pub fn parse(tokens: TokenStream) -> syn::Result<Self> {
        match syn::parse2::<Item>(tokens.clone()) {
            Ok(Item::Fn(item)) => Ok(Input::Fn(item)),
            Ok(Item::Impl(item)) => Ok(Input::Impl(item)),
            Ok(other) => Err(syn::Error::new_spanned(
                item_head(&other),
                "#[hot] belongs on a function or an `impl` block",
            )),
            Err(error) => Err(syn::Error::new(
                error.span(),
                format!("#[hot] belongs on a function with a body or an `impl` block ({error})"),
            )),
        }
    }
}

/// The keyword and name of an item, so an error points at them rather than the whole item.
pub fn item_head(item: &Item) -> TokenStream {
    use quote::{quote, ToTokens};
    match item {
        Item::Struct(i) => {
            let (keyword, name) = (&i.struct_token, &i.ident);
            quote!(#keyword #name)
        }
        Item::Enum(i) => {
            let (keyword, name) = (&i.enum_token, &i.ident);
            quote!(#keyword #name)
        }
        Item::Trait(i) => {
            let (keyword, name) = (&i.trait_token, &i.ident);
            quote!(#keyword #name)
        }
        Item::Static(i) => {
            let (keyword, name) = (&i.static_token, &i.ident);
            quote!(#keyword #name)
        }
        Item::Const(i) => {
            let (keyword, name) = (&i.const_token, &i.ident);
            quote!(#keyword #name)
        }
        Item::Mod(i) => {
            let (keyword, name) = (&i.mod_token, &i.ident);
            quote!(#keyword #name)
        }
        Item::Type(i) => {
            let (keyword, name) = (&i.type_token, &i.ident);
            quote!(#keyword #name)
        }
        Item::Union(i) => {
            let (keyword, name) = (&i.union_token, &i.ident);
            quote!(#keyword #name)
        }
        Item::Fn(i) => {
            let (keyword, name) = (&i.sig.fn_token, &i.sig.ident);
            quote!(#keyword #name)
        }
        other => other.to_token_stream(),
    }
}

/// One function or method to make hot.
pub struct HotFn<'a> {
    pub attrs: &'a [Attribute],
    pub vis: &'a Visibility,
    pub sig: &'a Signature,
    pub block: &'a Block,
    pub context: Context<'a>,
    pub args: Args,
}

impl<'a> HotFn<'a> {
    pub fn free(item: &'a ItemFn, args: Args) -> Self {
        HotFn {
            attrs: &item.attrs,
            vis: &item.vis,
            sig: &item.sig,
            block: &item.block,
            context: Context::Free,
            args,
        }
    }

    pub fn method(item: &'a ImplItemFn, context: Context<'a>, args: Args) -> Self {
        HotFn {
            attrs: &item.attrs,
            vis: &item.vis,
            sig: &item.sig,
            block: &item.block,
            context,
            args,
        }
    }

    pub fn is_async(&self) -> bool {
        self.sig.asyncness.is_some()
    }
}

/// The methods of an impl block, for iteration.
pub fn methods(item: &ItemImpl) -> impl Iterator<Item = &ImplItemFn> {
    item.items.iter().filter_map(|item| match item {
        ImplItem::Fn(method) => Some(method),
        _ => None,
    })
}
