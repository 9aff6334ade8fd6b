//! # What a patch cannot do
//!
//! Each of these is refused with a message that names the item; the process keeps running its
//! current code with its state. `cargo hotpatch watch` turns them into a rebuild and a restart.
//!
//! - **Change a `#[hot]` function's signature.** A running process cannot switch a function to
//!   another argument or return type; the signature's fingerprint is checked when the patch is
//!   built and again when it is applied.
//! - **Change the layout of a type of the rebuilt crates**, unless it is a
//!   [`#[hot_state]`](crate::state) type whose version was raised: values of the old layout may be
//!   live in the process. The check reads the debug information of the base build and of the
//!   patch, so keep `debug` on in the profile you patch; without it a warning says layouts go
//!   unchecked. A plain type that `#[hot_state]` values hold (an enum field gaining a variant) may
//!   change when every state type holding it raises its version: the migration rebuilds those
//!   values. The tool warns that a value of it kept anywhere else would be misread.
//! - **Change a generic or `#[inline]` function that other crates use.** Those crates hold their
//!   own compiled copies, which a patch of its crate cannot replace.
//! - **Change the binary crate, a manifest, the lock file or a build script.**
//! - **Fork state.** A private static or thread-local that live patched code reaches in a way
//!   the tool cannot redirect (optimised code reading or writing it in place, a pointer to it in
//!   an anonymous constant, a general-dynamic thread-local access) is refused. A pointer to it in
//!   a named static (`static TABLE: [&AtomicU64; 1] = [&COUNT];`) is set to the running copy. A `tracing` callsite is the exception:
//!   a patch's fresh copy registers itself, harmlessly (see
//!   [patterns](crate::docs::patterns#trace-hot-code-as-usual)).
//!
//! # Other limits
//!
//! - Linux x86-64 only for now; elsewhere the workspace compiles and patching says it is
//!   unsupported.
//! - A host cannot use LTO: the symbols patches resolve against are gone.
//! - Calls already running finish on the code they started in, and old code stays mapped for the
//!   rest of the process (a frame may still run in it): each patch costs its library's size in
//!   memory, shown by `cargo hotpatch status`.
//! - Within a `#[hot]` trait impl, method bodies are compiled in a hidden helper impl: write
//!   `<Type as Trait>::Assoc` rather than `Self::Assoc` in them.
//! - `#[hot_state]` migrations go through the serialised form of each value (`serde_json`'s
//!   value tree): a float that is NaN or infinite, or an integer wider than 64 bits, does not
//!   survive it, and the migration fails cleanly (nothing changes). A `#[hot_state]` type cannot be
//!   generic. Code compiled against an old version that touches a migrated value gets
//!   [`StateError::Version`](crate::state::StateError) rather than the value.
//! - Generic impl blocks, generic functions, `impl Trait` arguments and return types, `const fn`
//!   and `extern` functions cannot be `#[hot]` (refused at compile time). In a `#[hot]` impl
//!   block such methods stay ordinary methods beside the hot ones (see [`#[hot]`](crate#hot)).
