//! The contained entry of a hot function: its original called inside `catch_unwind`, which a
//! commit writes to the slot instead of the original when rollback on panic is on. On a panic it
//! tells the runtime (which rolls the patch back) and runs the call again on the previous
//! version's code when every argument can be passed again, or lets the panic go on.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Ident;

use crate::ast::HotFn;
use crate::signature::SlotType;

/// The contained entry's definition, to sit beside the slot (`__HOT_SLOT`, of type `__HotFn`) in
/// the wrapper's body, and the expression of its address. `original` names the original
/// (`<Type as Helper>::name` for methods). An `async fn` gets none (its address is the
/// original's): its panics happen when the future is polled, after the call returned; nor does a
/// `#[hot(unwinds)]` function, whose panics its callers catch.
pub fn contained(
    hot: &HotFn,
    slot: &SlotType,
    original: &TokenStream,
) -> (TokenStream, TokenStream) {
    if hot.is_async() || hot.args.unwinds.is_some() {
        return (quote!(), quote!(#original as __HotFn as *const ()));
    }
    (
        definition(hot, slot, original),
        quote!(__hot_contained as __HotFn as *const ()),
    )
}

fn definition(hot: &HotFn, slot: &SlotType, original: &TokenStream) -> TokenStream {
    let mut params = Vec::new();
    let mut types = Vec::new();
    if let Some(ty) = &slot.receiver_ty {
        params.push(format_ident!("__hot_self"));
        types.push(ty);
    }
    for (index, ty) in slot.args.iter().enumerate() {
        params.push(format_ident!("__hot_arg{}", index));
        types.push(ty);
    }
    let keep: Vec<Ident> = (0..params.len())
        .map(|index| format_ident!("__hot_keep{}", index))
        .collect();
    let lifetimes = &slot.lifetimes;
    let generics = if lifetimes.is_empty() {
        quote!()
    } else {
        quote!(<#(#lifetimes),*>)
    };
    let unsafety = &hot.sig.unsafety;
    let returned = &slot.returned;
    let private = quote!(::hotreload_runtime::__private);
    quote! {
        #[allow(clippy::all, clippy::pedantic, unused_unsafe, unused_mut)]
        #unsafety fn __hot_contained #generics (#(#params: #types),*) -> #returned {
            use #private::{ReuseCopy as _, ReuseMutRef as _, ReuseNot as _};
            let __hot_again = true #(&& (&&#private::Reuse::<#types>::NEW).can_reuse())*;
            // SAFETY: bitwise copies, never dropped; used only when `__hot_again` says each is
            // `Copy` or a `&mut` whose first borrow ended with the call that panicked.
            #(let #keep = ::core::mem::ManuallyDrop::new(unsafe { ::core::ptr::read(&#params) });)*
            let __hot_result = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(
                move || unsafe { #original(#(#params),*) },
            ));
            match __hot_result {
                ::core::result::Result::Ok(value) => value,
                ::core::result::Result::Err(payload) => {
                    let fallback = #private::patch_panicked(
                        &__HOT_SLOT,
                        __hot_contained as __HotFn as *const (),
                        &*payload,
                        __hot_again,
                    );
                    match fallback {
                        ::core::option::Option::Some(code) if __hot_again => {
                            // SAFETY: the table writes only code of the slot's type as fallback.
                            let code = unsafe {
                                ::core::mem::transmute::<*const (), __HotFn>(code)
                            };
                            unsafe {
                                code(#(::core::mem::ManuallyDrop::into_inner(#keep)),*)
                            }
                        }
                        _ => ::std::panic::resume_unwind(payload),
                    }
                }
            }
        }
    }
}
