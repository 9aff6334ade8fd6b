//! Change the code of a running Rust program without restarting it.
//!
//! ```
//! use hotreload_runtime::hot;
//!
//! #[hot]
//! pub fn fee(qty: u64, price: u64) -> u64 {
//!     qty * price / 1000
//! }
//!
//! hotreload_runtime::init();
//! assert_eq!(fee(10, 500), 5);
//! hotreload_runtime::safe_point();
//! ```
//!
//! # `#[hot]`
//!
//! Every call of a `#[hot]` function goes through a slot of the process's indirection
//! [`Table`]: one atomic load and an indirect call; no lock, no hash lookup, no allocation.
//! A patch replaces slot contents; calls already running finish on the code they started in.
//!
//! It goes on:
//! - free functions: `#[hot] fn f(..)`;
//! - `impl` blocks, inherent or of a trait: `#[hot] impl Type { .. }` makes every method of the
//!   block that can sit in a slot hot (receivers `self`, `&self`, `&mut self`, typed ones like
//!   `self: Box<Self>`, or none). The attribute goes on the block because the slot needs the
//!   type's name, which only the block knows; `#[hot]` on a lone method says so. Put methods that
//!   should not be hot in another block;
//! - `async fn`, free or in an impl block: the slot holds a function returning a boxed future, so an
//!   async hot call costs one allocation more than the plain `async fn`. The future must be `Send`;
//!   `#[hot(?Send)]` (on the function, or on one method of a `#[hot]` impl) lifts that.
//!
//! The function reads the same in rustdoc: visibility, attributes, doc comments, `#[must_use]` and
//! lifetimes stay as written. What cannot sit in one slot: generic type or const parameters,
//! `impl Trait` arguments or return types, bounded lifetime parameters, `where` clauses,
//! `const fn`, `extern` functions. A lone `#[hot]` function with one of them is refused at
//! compile time, pointing at the offending tokens; so is a generic impl block.
//!
//! In a `#[hot]` impl block, such a method stays an ordinary method, as written, and the rest of
//! the block is hot: a constructor `fn new(name: impl Into<String>) -> Self` or a generic helper
//! does not need a block of its own. The rule reads off the signature; to have the compiler
//! check that a method is hot, put `#[hot]` on the method too (then it is refused like a lone
//! function), and a block none of whose methods can be hot is refused. At run time
//! [`functions`] and `cargo hotpatch status` list the hot functions only. An ordinary method is
//! patched like any function that is not hot: hot code a patch changes calls its new code, and a
//! change to a generic one is refused (the crates using it hold copies of it).
//!
//! ```
//! use hotreload_runtime::hot;
//!
//! pub struct Greeter {
//!     name: String,
//! }
//!
//! #[hot]
//! impl Greeter {
//!     /// Ordinary: an `impl Trait` argument makes it generic.
//!     pub fn new(name: impl Into<String>) -> Self {
//!         Greeter { name: name.into() }
//!     }
//!
//!     /// Hot.
//!     pub fn greet(&self) -> String {
//!         format!("hello, {}", self.name)
//!     }
//! }
//!
//! assert_eq!(Greeter::new("ada").greet(), "hello, ada");
//! let hot: Vec<String> = hotreload_runtime::functions().iter().map(|f| f.key.to_string()).collect();
//! assert!(hot.iter().any(|key| key.ends_with("Greeter::greet")), "{hot:?}");
//! assert!(!hot.iter().any(|key| key.ends_with("Greeter::new")), "{hot:?}");
//! ```
//!
//! Within a `#[hot]` trait impl, a method's body is compiled in a hidden helper impl of the same
//! type, so it names the trait's associated types as `<Type as Trait>::Assoc` rather than
//! `Self::Assoc`.
//!
//! # `#[hot_state]`
//!
//! Values that outlive a patch and whose type may change live in the runtime's [`state`] storage,
//! versioned and migrated by your own up and down migrations at commit and rollback, all or
//! nothing. See [`state`].
//!
//! # Safe points
//!
//! [`safe_point`] marks where a thread holds no reference into replaceable code, typically the top
//! of its main loop. A thread that calls it takes part in commits: a commit waits until every such
//! thread is parked there, so between two safe points a thread sees all of a commit or none of it.
//! Threads that never call it see each slot switch atomically. A thread about to block (sleep,
//! read a socket, wait on a channel) can do it inside [`blocking_at_safe_point`], so commits do not
//! wait for it meanwhile.
//!
//! # Patching a running process
//!
//! With `HOTRELOAD_CONTROL_SOCKET` set, [`init`] opens a [control socket](control) there on which
//! `cargo hotpatch` checks, applies and rolls back patch files (see [`patch`]). Linux only for now.

pub mod control;
pub mod docs;
pub mod entry;
mod error;
mod loader;
pub mod patch;
mod platform;
mod safe_point;
mod slot;
pub mod startup;
pub mod state;
mod sync;
mod table;
mod trust;
pub mod wire;

pub use error::Error;
pub use hotreload_macros::{hot, hot_state};
pub use loader::read_patch_file;
pub use patch::build_id;
pub use safe_point::{blocking_at_safe_point, participant_count, safe_point};
pub use slot::{HotFunction, HotKey, HotSlot};
pub use table::{
    CommitReport, FunctionInfo, HistoryAction, HistoryEntry, Table, Update, VersionChange,
    DEFAULT_SAFE_POINT_TIMEOUT,
};
pub use trust::trust_public_key;

use std::time::Duration;

/// The one set-up line of an app: reads the configuration from the environment.
///
/// `HOTRELOAD_SAFE_POINT_TIMEOUT_MS` sets how long commits wait for threads to reach a safe point.
/// `HOTRELOAD_CONTROL_SOCKET` names a path where a Unix socket (mode 0600) is opened for
/// `cargo hotpatch`, served by a thread named `hotreload-control` (see [`control::serve`]); a
/// failure to open it is logged through `tracing` and the program carries on. Calling `init` again
/// does not open a second socket. `HOTRELOAD_CONTROL_GROUP` gives the socket to a group (mode
/// 0660) so that the users listed in `HOTRELOAD_ALLOWED_UIDS` can reach it.
///
/// `HOTRELOAD_TRUSTED_KEYS` lists ed25519 public keys (hex, separated by commas or spaces): then
/// only patches signed by one of them are applied (see [`trust_public_key`]); set but naming no
/// key, every patch is refused.
///
/// `HOTRELOAD_PATCH_DIR` names a directory of approved patch files: those built for this build
/// are applied here, before the program goes on, and one after which a process crashed (a fatal
/// signal) within its probation is quarantined (see [`startup`]).
///
/// `HOTRELOAD_TOOL_SOCKET` (set by `cargo hotpatch run` and `watch`) names the tool's socket:
/// `init` connects to it, proves with `HOTRELOAD_TOOL_SECRET` that it is the app the tool
/// started (and checks the tool's proof), and serves the tool's requests from a thread named
/// `hotreload-tool`.
///
/// Without any configuration it costs nothing on the call path: hot functions and safe points are
/// ready before it runs.
pub fn init() {
    if let Some(millis) = std::env::var("HOTRELOAD_SAFE_POINT_TIMEOUT_MS")
        .ok()
        .and_then(|value| value.trim().parse::<u64>().ok())
    {
        Table::global().set_safe_point_timeout(Duration::from_millis(millis));
    }
    if let Some(keys) = std::env::var_os("HOTRELOAD_TRUSTED_KEYS") {
        trust::trust_configured_keys(&keys.to_string_lossy());
    }
    if let Some(dir) = std::env::var_os("HOTRELOAD_PATCH_DIR").filter(|p| !p.is_empty()) {
        static AT_START: std::sync::Once = std::sync::Once::new();
        AT_START.call_once(|| {
            startup::apply_patch_dir(std::path::Path::new(&dir));
        });
    }
    if let Some(socket) = std::env::var_os("HOTRELOAD_TOOL_SOCKET").filter(|p| !p.is_empty()) {
        static TOOL: std::sync::Once = std::sync::Once::new();
        TOOL.call_once(|| {
            if let Err(error) = control::connect(std::path::Path::new(&socket)) {
                tracing::warn!(%error, "could not connect to cargo hotpatch");
            }
        });
    }
    if let Some(socket) = std::env::var_os("HOTRELOAD_CONTROL_SOCKET").filter(|p| !p.is_empty()) {
        static CONTROL: std::sync::Once = std::sync::Once::new();
        CONTROL.call_once(|| {
            if let Err(error) = control::serve(&socket) {
                tracing::error!(
                    socket = %std::path::Path::new(&socket).display(),
                    %error,
                    "could not open the hotreload control socket; live patching is off"
                );
            }
        });
    }
    let functions = Table::global().functions().len();
    tracing::debug!(functions, "hotreload runtime initialised");
}

/// The hot function registered under `key` (as [`HotKey`]'s `Display` writes it).
pub fn function(key: &str) -> Result<&'static HotFunction, Error> {
    Table::global().function(key)
}

/// Every hot function of the process with its current version.
pub fn functions() -> Vec<FunctionInfo> {
    Table::global().functions()
}

/// What generated code uses. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    use std::future::Future;
    use std::pin::Pin;

    pub use crate::slot::{HotFunction, HotKey, HotSlot};
    pub use crate::state::generated::*;
    pub use crate::state::{HotState, StateRegistration, StateType, StateValue, StateVersion};
    pub use crate::wire::state_record::{record, record_len};
    pub use inventory;

    /// What the slot of a `Send` hot `async fn` returns.
    pub type HotFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
    /// What the slot of a `#[hot(?Send)]` `async fn` returns.
    pub type HotLocalFuture<T> = Pin<Box<dyn Future<Output = T> + 'static>>;

    /// Widens a boxed future's lifetime to `'static` so it fits a slot type.
    ///
    /// # Safety
    /// The caller must not let the future outlive what it borrows: the generated wrapper awaits it
    /// at once inside its own future, which holds the same borrows.
    pub unsafe fn erase_future_lifetime<'a, T>(
        future: Pin<Box<dyn Future<Output = T> + Send + 'a>>,
    ) -> HotFuture<T> {
        // SAFETY: only the lifetime bound of the trait object changes; the layout is the same.
        unsafe { std::mem::transmute(future) }
    }

    /// [`erase_future_lifetime`] for futures that are not `Send`.
    ///
    /// # Safety
    /// As for [`erase_future_lifetime`].
    pub unsafe fn erase_local_future_lifetime<'a, T>(
        future: Pin<Box<dyn Future<Output = T> + 'a>>,
    ) -> HotLocalFuture<T> {
        // SAFETY: only the lifetime bound of the trait object changes; the layout is the same.
        unsafe { std::mem::transmute(future) }
    }
}
