//! Checks the arguments of `#[hot_state]` against the type they are on; reports what is wrong on
//! the user's tokens.

use super::ast::StateInput;

/// The type's version, once everything `#[hot_state]` needs holds.
pub fn check(input: &StateInput) -> syn::Result<u32> {
    let ident = input.ident();
    let generics = input.generics();
    let args = &input.args;
    if !generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &generics.params,
            "a #[hot_state] type cannot be generic: its values are kept under one name and version",
        ));
    }
    let Some(version_lit) = &args.version else {
        return Err(syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[hot_state] needs a version: write `#[hot_state(version = 1)]`",
        ));
    };
    let version: u32 = version_lit.base10_parse()?;
    if version == 0 {
        return Err(syn::Error::new_spanned(version_lit, "versions start at 1"));
    }
    match (&args.previous, version) {
        (None, v) if v > 1 => {
            return Err(syn::Error::new_spanned(
                version_lit,
                format!(
                    "version {v} of `{ident}` needs a migration from version {}: keep version {}'s definition as `#[hot_state(version = {}, snapshot)] struct {ident}V{}`, write `previous = {ident}V{}` here, and implement `hotreload_runtime::state::Migrate<{ident}V{}> for {ident}`",
                    v - 1, v - 1, v - 1, v - 1, v - 1, v - 1
                ),
            ))
        }
        (Some(previous), 1) => {
            return Err(syn::Error::new_spanned(
                previous,
                "version 1 has no previous version: remove `previous`",
            ))
        }
        _ => {}
    }
    if let (Some(_snapshot), Some(name)) = (&args.snapshot, &args.name) {
        return Err(syn::Error::new_spanned(
            name,
            "a snapshot is not stored, so it has no name: remove `name`",
        ));
    }
    Ok(version)
}
