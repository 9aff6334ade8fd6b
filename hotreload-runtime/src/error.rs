//! The runtime's one error type. Each variant is named after the step that failed; on every error
//! nothing has changed: the process keeps running the code it ran before.

use std::time::Duration;

/// Why an update, a rollback or a lookup did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No hot function is registered under this key.
    #[error("no hot function named `{key}` is registered in this process; `hotreload_runtime::functions()` lists them")]
    UnknownFunction {
        /// The key that was looked up.
        key: String,
    },

    /// A replacement's type is not the hot function's.
    #[error("the replacement for `{key}` has type `{found}`, but the hot function's slot holds `{expected}`; a changed signature needs a restart")]
    SignatureMismatch {
        /// The hot function.
        key: String,
        /// The slot's function pointer type.
        expected: &'static str,
        /// The replacement's type.
        found: &'static str,
    },

    /// The same function appears twice in one update.
    #[error("the update replaces `{key}` twice; give each function one new version per update")]
    DuplicateEntry {
        /// The hot function.
        key: String,
    },

    /// An update with no entries.
    #[error("the update is empty: it replaces no function")]
    EmptyUpdate,

    /// Participating threads did not reach a safe point in time.
    #[error("gave up after {timeout:?} waiting for {} thread(s) to reach `safe_point()`: {}; nothing was changed. Call `safe_point()` more often in those threads, or raise the timeout", threads.len(), threads.join(", "))]
    SafePointTimeout {
        /// How long the commit waited.
        timeout: Duration,
        /// The threads that did not arrive.
        threads: Vec<String>,
    },

    /// Rollback with nothing applied.
    #[error("nothing to roll back: no update is applied")]
    NothingToRollBack,
}
