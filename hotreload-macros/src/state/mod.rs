//! `#[hot_state(version = N, ...)]`: versions a struct or enum whose values live in the runtime's
//! storage and migrate across patches. Parsed (`attr.rs`, `ast.rs`), checked (`valid.rs`), then
//! expanded (`expand.rs`), as `#[hot]` is.

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro2::TokenStream;
use quote::quote;

use ast::StateInput;

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let checked = StateInput::parse(args, input.clone())
        .and_then(|state| valid::check(&state).map(|version| (state, version)));
    match checked {
        Ok((state, version)) => expand::state(&state, version),
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#input #error)
        }
    }
}
