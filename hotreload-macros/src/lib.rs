//! The `#[hot]` attribute of hotreload. Use it through `hotreload_runtime`, which documents it.

mod ast;
mod attr;
mod expand;
mod signature;
mod valid;

use proc_macro::TokenStream;

/// Routes every call of a function, or of each method of an `impl` block, through a slot of the
/// hotreload indirection table. See `hotreload_runtime` for the full documentation.
#[proc_macro_attribute]
pub fn hot(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::hot(args.into(), input.into()).into()
}
