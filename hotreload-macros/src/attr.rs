//! The arguments of `#[hot(...)]`.

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream};
use syn::Token;

/// The arguments of `#[hot(...)]`.
#[derive(Default)]
pub struct Args {
    /// `?Send`: an `async fn` whose future is not `Send`.
    pub not_send: Option<TokenStream>,
}

pub const ACCEPTED: &str = "unknown #[hot] argument: write `#[hot]`, or `#[hot(?Send)]` on an `async fn` whose future is not `Send`";

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Ok(Args::default());
        }
        let fork = input.fork();
        let question: Option<Token![?]> = fork.parse().ok();
        let ident: Option<syn::Ident> = fork.parse().ok();
        match (question, ident) {
            (Some(_), Some(ident)) if ident == "Send" && fork.is_empty() => {
                let tokens: TokenStream = input.parse()?;
                Ok(Args {
                    not_send: Some(tokens),
                })
            }
            _ => {
                let rest: TokenStream = input.parse()?;
                Err(syn::Error::new_spanned(rest, ACCEPTED))
            }
        }
    }
}
