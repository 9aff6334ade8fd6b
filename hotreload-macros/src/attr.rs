//! The arguments of `#[hot(...)]`.

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, ImplItemFn, Token};

/// The arguments of `#[hot(...)]`.
#[derive(Default)]
pub struct Args {
    /// `?Send`: an `async fn` whose future is not `Send`.
    pub not_send: Option<TokenStream>,
    /// `unwinds`: the function's panics are part of its contract (its callers catch them), so
    /// they never roll a patch back.
    pub unwinds: Option<syn::Ident>,
    /// Hidden: this `#[hot]` is the one [`crate::order`] put below the item's attribute macros.
    pub reordered: bool,
}

pub const ACCEPTED: &str = "unknown #[hot] argument: write `#[hot]`, `#[hot(?Send)]` on an `async fn` whose future is not `Send`, or `#[hot(unwinds)]` on a function whose callers catch its panics";

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
            unwinds: block.unwinds.clone(),
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
                Ok(parsed) => {
                    method_args.not_send = parsed.not_send.or(method_args.not_send);
                    method_args.unwinds = parsed.unwinds.or(method_args.unwinds);
                }
                Err(error) => errors.push(error),
            }
        }
        (method_args, marked_hot)
    }
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            let fork = input.fork();
            let question: Option<Token![?]> = fork.parse().ok();
            let ident: Option<syn::Ident> = fork.parse().ok();
            match (question, ident) {
                (Some(_), Some(ident)) if ident == "Send" => {
                    let question: Token![?] = input.parse()?;
                    let send: syn::Ident = input.parse()?;
                    args.not_send = Some(quote::quote!(#question #send));
                }
                (None, Some(ident)) if ident == "unwinds" => {
                    let ident: syn::Ident = input.parse()?;
                    args.unwinds = Some(ident);
                }
                // Only `#[hot]` itself writes this, last (see `crate::order`).
                (None, Some(ident)) if ident == "__reordered" => {
                    let _: syn::Ident = input.parse()?;
                    args.reordered = true;
                }
                _ => {
                    let rest: TokenStream = input.parse()?;
                    return Err(syn::Error::new_spanned(rest, ACCEPTED));
                }
            }
            if input.is_empty() {
                break;
            }
            if args.reordered || input.parse::<Token![,]>().is_err() {
                let rest: TokenStream = input.parse()?;
                return Err(syn::Error::new_spanned(rest, ACCEPTED));
            }
        }
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
