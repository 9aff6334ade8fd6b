//! Table slots and the registration every `#[hot]` function makes of itself.

use std::any::TypeId;
use std::fmt;
use std::sync::atomic::{AtomicPtr, Ordering};

/// One entry of the indirection table: the code a `#[hot]` function currently runs.
///
/// A call of a hot function is `slot.get()` (one atomic load) followed by an indirect call of the
/// result. The slot starts at the function's original code and only the [`Table`](crate::Table)
/// changes it, so it always holds a function of the hot function's exact signature.
pub struct HotSlot {
    current: AtomicPtr<()>,
    original: *const (),
    /// The plain code of the version before the one `current` runs (null for the binary's own):
    /// what a call whose patched code panicked is run again on (see [`crate::docs::patterns`]).
    /// Read only after a panic, never on the call path.
    fallback: AtomicPtr<()>,
}

// SAFETY: `original` is the address of a function, immutable for the life of the program; the
// mutable part is an atomic.
unsafe impl Sync for HotSlot {}
// SAFETY: as above; the slot holds no thread-bound data.
unsafe impl Send for HotSlot {}

impl HotSlot {
    /// A slot whose current and original code is `original`.
    #[doc(hidden)]
    pub const fn new(original: *const ()) -> Self {
        Self {
            current: AtomicPtr::new(original as *mut ()),
            original,
            fallback: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The code calls go to now. Acquire pairs with the table's release store, so code published
    /// by a freshly loaded library is visible before its address is.
    #[inline(always)]
    pub fn get(&self) -> *const () {
        self.current.load(Ordering::Acquire)
    }

    /// The code the function was compiled with in this binary.
    pub fn original(&self) -> *const () {
        self.original
    }

    pub(crate) fn set(&self, code: *const ()) {
        self.current.store(code as *mut (), Ordering::Release);
    }

    /// The plain code of the version before the one calls go to now; `None` while the slot holds
    /// the binary's own code.
    pub(crate) fn fallback(&self) -> Option<*const ()> {
        let code = self.fallback.load(Ordering::Acquire);
        (!code.is_null()).then_some(code as *const ())
    }

    pub(crate) fn set_fallback(&self, code: *const ()) {
        self.fallback.store(code as *mut (), Ordering::Release);
    }
}

/// The stable name of a hot function: what a later patch is matched by.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HotKey {
    /// `module_path!()` where the function is defined; starts with the crate's name.
    pub module_path: &'static str,
    /// The `Self` type for methods, as written in the `impl` header.
    pub self_ty: Option<&'static str>,
    /// The trait for methods of a trait impl, as written in the `impl` header.
    pub trait_name: Option<&'static str>,
    /// The function's name.
    pub name: &'static str,
}

impl HotKey {
    /// The crate that defines the function.
    pub fn crate_name(&self) -> &'static str {
        self.module_path
            .split("::")
            .next()
            .unwrap_or(self.module_path)
    }
}

impl fmt::Display for HotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.self_ty, self.trait_name) {
            (Some(ty), Some(tr)) => {
                write!(f, "<{}::{ty} as {tr}>::{}", self.module_path, self.name)
            }
            (Some(ty), None) => write!(f, "{}::{ty}::{}", self.module_path, self.name),
            _ => write!(f, "{}::{}", self.module_path, self.name),
        }
    }
}

impl fmt::Debug for HotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HotKey({self})")
    }
}

/// What a `#[hot]` function registers about itself (through `inventory`) at start-up, or when a
/// library holding it is loaded.
pub struct HotFunction {
    key: HotKey,
    original: CodeAddress,
    contained: CodeAddress,
    signature: &'static str,
    fingerprint: u64,
    fn_type_id: fn() -> TypeId,
    slot: &'static HotSlot,
    is_async: bool,
}

impl HotFunction {
    #[doc(hidden)]
    // Called by the macro's output only, which names each part.
    #[allow(clippy::too_many_arguments)]
    pub const fn new(
        key: HotKey,
        original: *const (),
        contained: *const (),
        signature: &'static str,
        fingerprint: u64,
        fn_type_id: fn() -> TypeId,
        slot: &'static HotSlot,
        is_async: bool,
    ) -> Self {
        Self {
            key,
            original: CodeAddress(original),
            contained: CodeAddress(contained),
            signature,
            fingerprint,
            fn_type_id,
            slot,
            is_async,
        }
    }

    /// The function's stable name.
    pub fn key(&self) -> HotKey {
        self.key
    }

    /// The type of the function pointer stored in the slot, as the macro wrote it
    /// (for an `async fn`, a function returning a boxed future).
    pub fn signature(&self) -> &'static str {
        self.signature
    }

    /// A hash of [`signature`](Self::signature): equal fingerprints mean the same written signature.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Whether this is an `async fn` (its slot holds a function returning a boxed future).
    pub fn is_async(&self) -> bool {
        self.is_async
    }

    /// The code this registration was compiled with: the binary's own for the binary's
    /// registrations, the new code for a loaded patch's.
    pub fn original(&self) -> *const () {
        self.original.0
    }

    /// The same code behind a boundary that contains a panic: a panic unwinding out of it rolls
    /// the patch back and the call is run again on the previous version where it can be (see
    /// [`crate::docs::patterns`]). What a slot holds for patched code when rollback on panic is
    /// on; the same as [`original`](Self::original) for an `async fn`.
    pub fn contained(&self) -> *const () {
        self.contained.0
    }

    /// The slot calls go through.
    pub fn slot(&self) -> &'static HotSlot {
        self.slot
    }

    /// `TypeId` of the slot's function pointer type, to check typed replacements.
    pub(crate) fn fn_type_id(&self) -> TypeId {
        (self.fn_type_id)()
    }
}

impl fmt::Debug for HotFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotFunction")
            .field("key", &self.key)
            .field("signature", &self.signature)
            .field("fingerprint", &format_args!("{:016x}", self.fingerprint))
            .field("is_async", &self.is_async)
            .finish()
    }
}

/// The address of a function's code.
#[derive(Clone, Copy)]
struct CodeAddress(*const ());

// SAFETY: an immutable code address; it is only ever called through a slot of the right type.
unsafe impl Sync for CodeAddress {}
// SAFETY: as above.
unsafe impl Send for CodeAddress {}

inventory::collect!(HotFunction);

/// Every hot function registered so far: those linked into the binary and those of loaded libraries.
pub(crate) fn registered() -> impl Iterator<Item = &'static HotFunction> {
    inventory::iter::<HotFunction>.into_iter()
}
