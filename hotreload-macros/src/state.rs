//! `#[hot_state(version = N, ...)]`: versions a struct or enum whose values live in the runtime's
//! storage and migrate across patches.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Fields, Item, LitInt, LitStr, Path, Token};

const ACCEPTED: &str = "#[hot_state] takes `version = N`, and optionally `previous = TypeOfPreviousVersion`, `name = \"...\"` or `snapshot`";

/// The arguments of `#[hot_state(...)]`.
struct Args {
    version: Option<LitInt>,
    previous: Option<Path>,
    name: Option<LitStr>,
    snapshot: Option<syn::Ident>,
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

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    match expand_inner(args, input.clone()) {
        Ok(tokens) => tokens,
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#input #error)
        }
    }
}

fn expand_inner(args: TokenStream, input: TokenStream) -> syn::Result<TokenStream> {
    let args: Args = syn::parse2(args)?;
    let item: Item = syn::parse2(input)?;
    let (ident, generics) = match &item {
        Item::Struct(s) => (&s.ident, &s.generics),
        Item::Enum(e) => (&e.ident, &e.generics),
        other => {
            return Err(syn::Error::new_spanned(
                item_head(other),
                "#[hot_state] goes on a struct or an enum",
            ))
        }
    };
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
    if let (Some(snapshot), Some(name)) = (&args.snapshot, &args.name) {
        let _ = snapshot;
        return Err(syn::Error::new_spanned(
            name,
            "a snapshot is not stored, so it has no name: remove `name`",
        ));
    }

    let name = match &args.name {
        Some(name) => name.to_token_stream(),
        None => quote!(::core::concat!(
            ::core::module_path!(),
            "::",
            ::core::stringify!(#ident)
        )),
    };
    let private = quote!(::hotreload_runtime::__private);
    let migration_error = quote!(::hotreload_runtime::state::MigrationError);
    let (from_version, to_version, previous_check) = match &args.previous {
        Some(previous) => {
            // The calls and the version check carry the span of `previous`, so their errors point
            // at the type it names.
            let span = previous.span();
            let ident_at_previous = syn::Ident::new(&ident.to_string(), span);
            let wrong_version = format!(
                "`previous = {}` must name version {} of `{ident}`, the version just before {version}",
                previous.to_token_stream().to_string().replace(' ', ""),
                version - 1,
            );
            (
                quote!((MIGRATIONS.0)(NAME, version, value)),
                quote!((MIGRATIONS.1)(NAME, self, version)),
                quote_spanned! {span=>
                    const MIGRATIONS: (
                        #private::FromVersionFn<#ident>,
                        #private::ToVersionFn<#ident>,
                    ) = migrations::<#ident_at_previous, #previous>();
                    const _: () = ::core::assert!(
                        <#previous as #private::StateVersion>::VERSION + 1 == #version,
                        #wrong_version,
                    );
                },
            )
        }
        None => (
            quote!(#private::from_own_version::<Self>(NAME, version, value)),
            quote!(#private::to_own_version::<Self>(NAME, self, version)),
            quote!(),
        ),
    };
    let shape = shape_fingerprint(&item);
    let live = if args.snapshot.is_some() {
        quote!()
    } else {
        quote! {
            // SAFETY: `LAYOUT` hashes the name, the version, the fields' shape, the size and the
            // alignment, and `state_type` returns `StateType::of::<Self>`.
            unsafe impl #private::HotState for #ident {
                const NAME: &'static str = NAME;
                const LAYOUT: u64 = #private::layout_fingerprint(
                    NAME,
                    #version,
                    #shape,
                    ::core::mem::size_of::<Self>(),
                    ::core::mem::align_of::<Self>(),
                );
                fn state_type() -> &'static #private::StateType {
                    &__HOT_STATE_TYPE
                }
            }
            const PATH: &str = ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident));
            // `cargo hotpatch` reads these records from ELF binaries; elsewhere they stay in plain data.
            #[cfg_attr(target_os = "linux", unsafe(link_section = ".hotreload_states"))]
            static __HOT_STATE_RECORD: [u8; #private::record_len(NAME, PATH)] = #private::record::<{ #private::record_len(NAME, PATH) }>(
                NAME,
                PATH,
                #version,
                <#ident as #private::HotState>::LAYOUT,
            );
            static __HOT_STATE_TYPE: #private::StateType = #private::StateType::of::<#ident>(&__HOT_STATE_RECORD);
            #private::inventory::submit! { #private::StateRegistration(&__HOT_STATE_TYPE) }
        }
    };
    Ok(quote! {
        #item
        const _: () = {
            const NAME: &str = #name;
            /// Both directions of a migration, behind one `Migrate` bound so that a missing
            /// implementation is reported once.
            #[allow(dead_code)]
            const fn migrations<T, P>() -> (
                #private::FromVersionFn<T>,
                #private::ToVersionFn<T>,
            )
            where
                T: #private::StateVersion + ::hotreload_runtime::state::Migrate<P>,
                P: #private::StateVersion,
            {
                (#private::from_version_via::<T, P>, #private::to_version_via::<T, P>)
            }
            impl #private::StateVersion for #ident {
                const VERSION: u32 = #version;
                fn from_version(
                    version: u32,
                    value: #private::StateValue,
                ) -> ::core::result::Result<Self, #migration_error> {
                    #from_version
                }
                fn to_version(
                    &self,
                    version: u32,
                ) -> ::core::result::Result<#private::StateValue, #migration_error> {
                    #to_version
                }
            }
            #previous_check
            #live
        };
    })
}

/// FNV-1a of a canonical text of the type's shape: field names and types, variants and their
/// discriminants, and `#[repr]`. Doc comments and other attributes are left out: they do not
/// change the layout.
fn shape_fingerprint(item: &Item) -> u64 {
    let mut text = String::new();
    let (attrs, body) = match item {
        Item::Struct(s) => {
            text.push_str("struct");
            (&s.attrs, fields_text(&s.fields))
        }
        Item::Enum(e) => {
            text.push_str("enum");
            let mut body = String::new();
            for variant in &e.variants {
                body.push_str(&variant.ident.to_string());
                body.push_str(&fields_text(&variant.fields));
                if let Some((_, discriminant)) = &variant.discriminant {
                    body.push('=');
                    body.push_str(&discriminant.to_token_stream().to_string());
                }
                body.push(';');
            }
            (&e.attrs, body)
        }
        _ => unreachable!("checked by the caller"),
    };
    for attr in attrs {
        if attr.path().is_ident("repr") {
            text.push_str(&attr.to_token_stream().to_string());
        }
    }
    text.push_str(&body);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn fields_text(fields: &Fields) -> String {
    let mut text = String::from("{");
    for (i, field) in fields.iter().enumerate() {
        match &field.ident {
            Some(ident) => text.push_str(&ident.to_string()),
            None => text.push_str(&i.to_string()),
        }
        text.push(':');
        text.push_str(&field.ty.to_token_stream().to_string());
        text.push(',');
    }
    text.push('}');
    text
}

/// The keyword and name of an item, so an error points at them rather than the whole item.
fn item_head(item: &Item) -> TokenStream {
    match item {
        Item::Union(i) => {
            let (keyword, name) = (&i.union_token, &i.ident);
            quote!(#keyword #name)
        }
        Item::Fn(i) => {
            let (keyword, name) = (&i.sig.fn_token, &i.sig.ident);
            quote!(#keyword #name)
        }
        other => quote!(#other),
    }
}
