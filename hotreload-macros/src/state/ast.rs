//! The model of what `#[hot_state]` was put on: a struct or an enum and the attribute's arguments,
//! keeping the user's tokens.

use proc_macro2::TokenStream;
use syn::{Generics, Ident, Item};

use super::attr::Args;
use crate::ast::item_head;

/// The item under `#[hot_state]`, a struct or an enum.
pub struct StateInput {
    pub args: Args,
    pub item: Item,
}

impl StateInput {
    pub fn parse(args: TokenStream, input: TokenStream) -> syn::Result<Self> {
        let args: Args = syn::parse2(args)?;
        let item: Item = syn::parse2(input)?;
        match &item {
            Item::Struct(_) | Item::Enum(_) => Ok(StateInput { args, item }),
            other => Err(syn::Error::new_spanned(
                item_head(other),
                "#[hot_state] goes on a struct or an enum",
            )),
        }
    }

    pub fn ident(&self) -> &Ident {
        match &self.item {
            Item::Struct(s) => &s.ident,
            Item::Enum(e) => &e.ident,
            _ => unreachable!("checked by `parse`"),
        }
    }

    pub fn generics(&self) -> &Generics {
        match &self.item {
            Item::Struct(s) => &s.generics,
            Item::Enum(e) => &e.generics,
            _ => unreachable!("checked by `parse`"),
        }
    }
}
