//! Turns a checked `#[hot_state]` type into its trait implementations, its descriptor and its
//! `.hotreload_states` record.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Fields, Ident, Item, Path};

use super::ast::StateInput;

/// The user's item followed by what makes it a `#[hot_state]` type of `version`.
pub fn state(input: &StateInput, version: u32) -> TokenStream {
    let item = &input.item;
    let ident = input.ident();
    let args = &input.args;
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
        Some(previous) => via_previous(ident, previous, version, &private),
        None => (
            quote!(#private::from_own_version::<Self>(NAME, version, value)),
            quote!(#private::to_own_version::<Self>(NAME, self, version)),
            quote!(),
        ),
    };
    let live = if args.snapshot.is_some() {
        quote!()
    } else {
        live(item, ident, version, &private)
    };
    quote! {
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
    }
}

/// The bodies of `from_version` and `to_version` of a type whose previous version is `previous`,
/// and the compile-time check that `previous` is the version just before.
fn via_previous(
    ident: &Ident,
    previous: &Path,
    version: u32,
    private: &TokenStream,
) -> (TokenStream, TokenStream, TokenStream) {
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

/// What a live (not `snapshot`) type adds: `HotState`, its descriptor and registration, and its
/// `.hotreload_states` record.
fn live(item: &Item, ident: &Ident, version: u32, private: &TokenStream) -> TokenStream {
    let shape = shape_fingerprint(item);
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
