//! The `#[hot]` and `#[hot_state]` attributes of hotreload. Use it through `hotreload_runtime`, which documents it.

mod ast;
mod attr;
mod contain;
mod expand;
mod order;
mod signature;
mod state;
mod valid;

use proc_macro::TokenStream;

/// Routes every call of a function, or of each method of an `impl` block, through a slot of the
/// hotreload indirection table. See `hotreload_runtime` for the full documentation.
#[proc_macro_attribute]
pub fn hot(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::hot(args.into(), input.into()).into()
}

/// Versions a struct or enum whose values live in the runtime's storage and are migrated across
/// patches. See `hotreload_runtime::state` for the full documentation.
#[proc_macro_attribute]
pub fn hot_state(args: TokenStream, input: TokenStream) -> TokenStream {
    state::expand(args.into(), input.into()).into()
}
