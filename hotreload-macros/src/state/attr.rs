//! The arguments of `#[hot_state(...)]`.

use syn::parse::{Parse, ParseStream};
use syn::{LitInt, LitStr, Path, Token};

const ACCEPTED: &str = "#[hot_state] takes `version = N`, and optionally `previous = TypeOfPreviousVersion`, `name = \"...\"` or `snapshot`";

/// The arguments of `#[hot_state(...)]`, as written.
pub struct Args {
    pub version: Option<LitInt>,
    pub previous: Option<Path>,
    pub name: Option<LitStr>,
    pub snapshot: Option<syn::Ident>,
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = Args {
            version: None,
            previous: None,
            name: None,
            snapshot: None,
        };
        while !input.is_empty() {
            let key: syn::Ident = input
                .parse()
                .map_err(|e| syn::Error::new(e.span(), ACCEPTED))?;
            match key.to_string().as_str() {
                "version" => {
                    input.parse::<Token![=]>()?;
                    args.version = Some(input.parse()?);
                }
                "previous" => {
                    input.parse::<Token![=]>()?;
                    args.previous = Some(input.parse()?);
                }
                "name" => {
                    input.parse::<Token![=]>()?;
                    args.name = Some(input.parse()?);
                }
                "snapshot" => args.snapshot = Some(key),
                _ => return Err(syn::Error::new(key.span(), ACCEPTED)),
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}
