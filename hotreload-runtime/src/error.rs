//! The runtime's one error type. Each variant is named after the step that failed; on every error
//! nothing has changed: the process keeps running the code it ran before.

use std::path::PathBuf;
use std::time::Duration;

use crate::wire::patch_file::PatchFileError;

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

    /// A control request that is not one line of JSON of a known request.
    #[error("malformed control request: {reason}; send one JSON object per line, such as {{\"command\":\"hello\"}}, as `cargo hotpatch` does")]
    Request {
        /// What was wrong with it.
        reason: String,
    },

    /// The patch file could not be read.
    #[error("could not read the patch file `{}`: {source}; check the path, and that this process (which reads the file itself) may read it", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },

    /// The patch file is not a well-formed patch, or its library does not match its manifest.
    #[error("the patch file `{}` failed its integrity check: {source}", path.display())]
    Integrity {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: PatchFileError,
    },

    /// The patch was built against another build than the one running.
    #[error("patch {patch} was built for build {patch_build} but this process runs build {process_build}; rebuild the patch against this build (`cargo hotpatch build --base` with the build this process was started from)")]
    BaseBuild {
        /// The patch's short id.
        patch: String,
        /// The build id the patch names.
        patch_build: String,
        /// The build id of this process's executable.
        process_build: String,
    },

    /// This process's own build id could not be read.
    #[error("could not read the GNU build id of this process's executable: {reason}; link it with `-Wl,--build-id` (the default of most Linux toolchains) so patches can be matched to it")]
    BuildId {
        /// Why.
        reason: String,
    },

    /// The entries of the update's functions could not be redirected (or restored) safely.
    #[error("update {update} could not redirect the entries of its functions: {source}; nothing was changed")]
    EntryRedirect {
        /// The update's label (the patch id for patches).
        update: String,
        /// Why.
        #[source]
        source: crate::entry::EntryError,
    },

    /// The patch redirects functions' entries, which this process was not allowed to do.
    #[error("patch {patch} redirects the entries of {functions} functions that are not `#[hot]` (every thread is stopped briefly to write them), and this apply did not allow it; nothing was changed. Pass `--allow-entry-redirects` to `cargo hotpatch apply` (or set HOTRELOAD_ALLOW_ENTRY_REDIRECTS=1 in the process), bounding the pause with HOTRELOAD_MAX_PAUSE_MS")]
    EntryRedirectsNotAllowed {
        /// The patch's short id.
        patch: String,
        /// How many functions it redirects.
        functions: usize,
    },

    /// Live patching is not implemented for this platform.
    #[error("live patching is only supported on Linux for now; this process runs on {os}")]
    Unsupported {
        /// The operating system (`std::env::consts::OS`).
        os: &'static str,
    },

    /// The patch library could not be loaded.
    #[error("could not load the library of patch {patch}: {reason}; nothing was changed. The file passed its integrity check, so the library itself does not load here: rebuild the patch with `cargo hotpatch build` against this build")]
    Load {
        /// The patch's short id.
        patch: String,
        /// What failed (the dynamic loader's message for `dlopen`).
        reason: String,
    },

    /// The process ran out of file descriptors while reading or loading a patch.
    #[error("the process is out of file descriptors, so patch {patch} could not be read or loaded ({reason}); it has {open} open and may have {limit} (RLIMIT_NOFILE). Nothing was changed, and nothing is wrong with the patch: raise the limit (`ulimit -n`, systemd's LimitNOFILE=) or close descriptors, then apply it again")]
    OutOfDescriptors {
        /// The patch's short id, or its file when it could not be read.
        patch: String,
        /// The system's or the loader's message.
        reason: String,
        /// Descriptors open when it failed.
        open: usize,
        /// The soft limit.
        limit: u64,
    },

    /// A patch library that registered no hot function the process has: committing it would
    /// change nothing.
    #[error("patch {patch} carries no hot function of this process, so applying it would change nothing; nothing was changed. Build the patch from a crate with `#[hot]` functions this program calls")]
    NoHotFunctions {
        /// The patch's short id.
        patch: String,
    },

    /// A patch carries a hot function whose signature differs from the running one.
    #[error("patch {patch} changes the signature of hot function `{key}` from `{running}` to `{patched}`; a running process cannot switch a function to another signature, so nothing was changed: restart the process with the new build")]
    SignatureChanged {
        /// The patch's short id.
        patch: String,
        /// The hot function.
        key: String,
        /// The slot type the process runs.
        running: &'static str,
        /// The slot type in the patch.
        patched: String,
    },

    /// The process trusts signed patches only, and this one is not signed.
    #[error("patch {patch} is not signed, and this process applies only patches signed by a trusted key ({trusted}); sign it with `cargo hotpatch build --sign KEY`")]
    Unsigned {
        /// The patch's short id.
        patch: String,
        /// The trusted public keys, hex.
        trusted: String,
    },

    /// The patch is signed by a key this process does not trust.
    #[error("patch {patch} is signed by key {key}, which this process does not trust (it trusts {trusted}); sign it with a trusted key, or add the key to HOTRELOAD_TRUSTED_KEYS")]
    UntrustedKey {
        /// The patch's short id.
        patch: String,
        /// The signer's public key, hex.
        key: String,
        /// The trusted public keys, hex.
        trusted: String,
    },

    /// The signature does not verify.
    #[error("the signature of patch {patch} does not verify: the patch was changed after it was signed, or the signature is forged; nothing was changed")]
    BadSignature {
        /// The patch's short id.
        patch: String,
    },

    /// A migration of a `#[hot_state]` value failed or panicked: no value changed version.
    #[error("{update}: migrating `{name}` from version {from} to {to} failed on value {value} of {values}: {reason}; every value kept version {from} and nothing was changed. Fix the migration (`impl Migrate` for the new version) and build the patch again")]
    Migration {
        /// The update (patch id or label).
        update: String,
        /// The state type.
        name: String,
        /// The version the values have.
        from: u32,
        /// The version they were to get.
        to: u32,
        /// The position of the value that failed among the type's live values.
        value: usize,
        /// How many live values the type has.
        values: usize,
        /// The migration's error, or its panic message.
        reason: String,
    },

    /// A migration did not return by the commit's deadline: the patch was abandoned.
    #[error("{update}: migrating `{name}` from version {from} to {to} did not finish within {waited:?}, the commit's deadline; the patch was abandoned and nothing was changed: every value kept version {from}{}. The migration is stuck in user code on the thread `{thread}`, which cannot be stopped and is leaked: it runs until the process ends. Fix the migration (`impl Migrate` for the new version) and build the patch again", locked_note(kept_locked))]
    MigrationStuck {
        /// The update (patch id or label).
        update: String,
        /// The state type.
        name: String,
        /// The version the values have.
        from: u32,
        /// The version they were to get.
        to: u32,
        /// How long the commit waited.
        waited: Duration,
        /// The stuck thread's name.
        thread: &'static str,
        /// Positions of the values whose lock stays held: the stuck code may still read them.
        kept_locked: Vec<usize>,
    },

    /// Values of a changed state type stayed locked past the commit's deadline.
    #[error("{update}: values of `{name}` stayed locked until the deadline, so they could not be migrated; nothing was changed. Do not hold a value's lock (`read`, `write`, `lock`) across a blocking call or a `safe_point()`, or raise HOTRELOAD_SAFE_POINT_TIMEOUT_MS")]
    StateBusy {
        /// The update (patch id or label).
        update: String,
        /// The state type.
        name: String,
    },

    /// A patch carries a `#[hot_state]` type whose layout changed but whose version did not.
    #[error("patch {patch} changes the layout of `{name}` but keeps its version {version}; values of it in this process have the old layout, so nothing was changed. Raise `#[hot_state(version = ..)]` and write the migration from the previous version")]
    StateVersionNotRaised {
        /// The patch's short id.
        patch: String,
        /// The state type.
        name: String,
        /// The version both have.
        version: u32,
    },

    /// The patch is applied, but a patch applied after it runs now: patches are cumulative, so
    /// answering "already applied" would be false, and reapplying it would take the process back.
    #[error("patch {patch} was applied earlier, but patch {running} was applied after it and its code is running now; nothing was changed. Patches are cumulative: to run {patch}'s code again, roll back {running} (`cargo hotpatch rollback`)")]
    Superseded {
        /// The patch's short id.
        patch: String,
        /// The short id (or label) of the update running now.
        running: String,
    },

    /// A redirect of the manifest would make the runtime write outside the library's writable
    /// data (into its RELRO range, its code, or past its end).
    #[error("patch {patch} is refused before loading: the redirect of `{name}` is invalid: {reason}; nothing was changed. The manifest was crafted or damaged: rebuild the patch with `cargo hotpatch build`")]
    BadRedirect {
        /// The patch's short id.
        patch: String,
        /// The redirected static.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A configured trusted key is not a key.
    #[error("the trusted key `{key}` is not an ed25519 public key in hex (64 hex digits); until it is fixed every patch is refused")]
    TrustedKey {
        /// The malformed key as configured.
        key: String,
    },

    /// `HOTRELOAD_TRUSTED_KEYS` is set but names no key: no signer is trusted.
    #[error("patch {patch} is refused: HOTRELOAD_TRUSTED_KEYS is set but names no key, so this process trusts no signer and refuses every patch; list the public keys (hex) of the signers to trust, or unset it to accept unsigned patches")]
    NoTrustedKey {
        /// The patch's short id.
        patch: String,
    },
}

/// The part of [`Error::MigrationStuck`]'s message about the locks.
fn locked_note(kept_locked: &[usize]) -> String {
    match kept_locked {
        [] => " and every value's lock was released".to_owned(),
        positions => format!(
            ", and every value's lock was released except those of the values at {positions:?}, which the stuck code is still reading: they stay locked"
        ),
    }
}

impl Error {
    /// The step that failed, as the control protocol names it: `request`, `read`, `integrity`,
    /// `base_build`, `load`, `signature`, `migrate`, `commit`, `rollback` or `platform`.
    pub fn step(&self) -> &'static str {
        match self {
            Error::UnknownFunction { .. } | Error::Request { .. } => "request",
            Error::SignatureMismatch { .. } | Error::SignatureChanged { .. } => "signature",
            Error::DuplicateEntry { .. }
            | Error::EmptyUpdate
            | Error::SafePointTimeout { .. }
            | Error::Superseded { .. } => "commit",
            Error::NothingToRollBack => "rollback",
            Error::Migration { .. }
            | Error::MigrationStuck { .. }
            | Error::StateBusy { .. }
            | Error::StateVersionNotRaised { .. } => "migrate",
            Error::Read { .. } => "read",
            Error::Integrity { .. } | Error::BadRedirect { .. } => "integrity",
            Error::BaseBuild { .. } | Error::BuildId { .. } => "base_build",
            Error::Unsupported { .. } => "platform",
            Error::EntryRedirect { .. } | Error::EntryRedirectsNotAllowed { .. } => "entry",
            Error::Load { .. } | Error::NoHotFunctions { .. } | Error::OutOfDescriptors { .. } => {
                "load"
            }
            Error::Unsigned { .. }
            | Error::UntrustedKey { .. }
            | Error::BadSignature { .. }
            | Error::TrustedKey { .. }
            | Error::NoTrustedKey { .. } => "authenticity",
        }
    }
}
