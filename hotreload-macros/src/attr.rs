//! The arguments of `#[hot(...)]`.

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, ImplItemFn, Token};

/// The arguments of `#[hot(...)]`.
#[derive(Default)]
pub struct Args {
    /// `?Send`: an `async fn` whose future is not `Send`.
    pub not_send: Option<TokenStream>,
    /// Hidden: this `#[hot]` is the one [`crate::order`] put below the item's attribute macros.
    pub reordered: bool,
}

pub const ACCEPTED: &str = "unknown #[hot] argument: write `#[hot]`, or `#[hot(?Send)]` on an `async fn` whose future is not `Send`";

impl Args {
    /// A method's arguments in a `#[hot]` block: its own `#[hot(...)]`'s, else the block's; and
    /// whether it carries `#[hot]` itself.
    pub fn of_method(
        block: &Args,
        method: &ImplItemFn,
        errors: &mut Vec<syn::Error>,
    ) -> (Args, bool) {
        let mut method_args = Args {
            not_send: block.not_send.clone(),
            reordered: false,
        };
        let mut marked_hot = false;
        for attr in method.attrs.iter().filter(|attr| is_hot_attr(attr)) {
            marked_hot = true;
            let parsed = match &attr.meta {
                syn::Meta::Path(_) => Ok(Args::default()),
                syn::Meta::List(list) => syn::parse2::<Args>(list.tokens.clone()),
                syn::Meta::NameValue(_) => Err(syn::Error::new_spanned(attr, ACCEPTED)),
            };
            match parsed {
                Ok(parsed) if parsed.not_send.is_some() => method_args = parsed,
                Ok(_) => {}
                Err(error) => errors.push(error),
            }
        }
        (method_args, marked_hot)
    }
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = Args::default();
        if input.is_empty() {
            return Ok(args);
        }
        let fork = input.fork();
        let question: Option<Token![?]> = fork.parse().ok();
        let ident: Option<syn::Ident> = fork.parse().ok();
        match (question, ident) {
            (Some(_), Some(ident)) if ident == "Send" => {
                let question: Token![?] = input.parse()?;
                let send: syn::Ident = input.parse()?;
                args.not_send = Some(quote::quote!(#question #send));
                if input.is_empty() {
                    return Ok(args);
                }
                if input.parse::<Token![,]>().is_err() {
                    let rest: TokenStream = input.parse()?;
                    return Err(syn::Error::new_spanned(rest, ACCEPTED));
                }
            }
            (None, Some(ident)) if ident == "__reordered" => {}
            _ => {
                let rest: TokenStream = input.parse()?;
                return Err(syn::Error::new_spanned(rest, ACCEPTED));
            }
        }
        // Only `#[hot]` itself writes this (see `crate::order`).
        let rest: TokenStream = input.parse()?;
        if rest.to_string() != "__reordered" {
            return Err(syn::Error::new_spanned(rest, ACCEPTED));
        }
        args.reordered = true;
        Ok(args)
    }
}

/// Whether an attribute is `#[hot]` or `#[hot(...)]` (as used on methods of a `#[hot]` impl).
pub fn is_hot_attr(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "hot")
}
