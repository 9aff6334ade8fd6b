//! The control protocol: one JSON request per line, answered by one JSON response per line.
//!
//! The tool (`cargo hotpatch`) and the runtime share these types, so the parser of one side is the
//! printer of the other.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The protocol version; a peer speaking another one is refused with an error response.
pub const PROTOCOL_VERSION: u32 = 1;

/// A request to a running process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// Who is there: process id, build, protocol version.
    Hello,
    /// The hot functions, applied patches and history.
    Status,
    /// Every step of `Apply` before the point of no return; changes nothing.
    Check {
        /// The patch file, readable by the process.
        path: PathBuf,
    },
    /// Verify, load and commit a patch.
    Apply {
        /// The patch file, readable by the process.
        path: PathBuf,
        /// Whether the patch may redirect the entries of functions that are not `#[hot]` (which
        /// stops every thread briefly). A process started by `cargo hotpatch run` or `watch`
        /// allows it without asking; any other is refused such a patch unless this is set.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        allow_entry_redirects: bool,
    },
    /// Undo the last applied patch.
    Rollback,
    /// The panics that rolled a patch back (rollback on panic) whose rollback is settled, after
    /// the one numbered `since`.
    Panics {
        /// The last sequence number already seen; 0 for all.
        since: u64,
    },
}

/// The answer to a request.
// One response per request line, built once and serialised at once: boxing the reply would only
// add an allocation and noise at every use.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// The request succeeded.
    Ok(Reply),
    /// The request failed; nothing changed.
    Error(ErrorReply),
}

/// What a failed request says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The step that failed: `request`, `read`, `integrity`, `base_build`, `load`, `signature`,
    /// `symbols`, `commit`, `rollback`.
    pub step: String,
    /// What happened and what to do.
    pub message: String,
}

/// What a successful request returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    /// Answer to `Hello`.
    Hello {
        /// The protocol version spoken.
        protocol: u32,
        /// The process id.
        pid: u32,
        /// The executable's GNU build id, hex.
        build_id: String,
    },
    /// Answer to `Status`.
    Status(StatusReport),
    /// Answer to `Check` and `Apply`.
    Patch(PatchReport),
    /// Answer to `Rollback`.
    RolledBack(PatchReport),
    /// Answer to `Panics` (a struct variant: the reply's tag goes beside its fields).
    Panics {
        /// The panics, oldest first.
        panics: Vec<PatchPanic>,
    },
}

/// A process's hot functions, patches and history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The process id.
    pub pid: u32,
    /// The executable's GNU build id, hex.
    pub build_id: String,
    /// Every hot function, by key.
    pub functions: Vec<FunctionStatus>,
    /// Applied patches, oldest first.
    pub patches: Vec<AppliedPatch>,
    /// The last commits and rollbacks (at most a few dozen), oldest first.
    pub history: Vec<HistoryItem>,
    /// How many earlier commits and rollbacks are left out of `history`.
    #[serde(default)]
    pub history_dropped: u64,
    /// Every `#[hot_state]` type with values, with its version now.
    #[serde(default)]
    pub states: Vec<StateStatus>,
    /// Bytes of patch libraries kept mapped (old code stays mapped: a frame may still run in it).
    pub mapped_bytes: u64,
    /// Patches this process quarantined at start instead of applying them.
    #[serde(default)]
    pub quarantined: Vec<QuarantinedPatch>,
    /// How long a commit may wait for safe points, and then again for state locks and
    /// migrations, in milliseconds: what a client waiting for an `apply` should allow for.
    #[serde(default)]
    pub commit_timeout_ms: u64,
    /// The id of the patch an `apply` is verifying, loading or committing right now, if any: a
    /// client whose request timed out waits until it is no longer in progress.
    #[serde(default)]
    pub applying: Option<String>,
    /// Threads seen inside a patch's code at this status and at earlier ones, for at least the
    /// process's threshold (`HOTRELOAD_STUCK_THREAD_MS`).
    #[serde(default)]
    pub long_running: Vec<ThreadInPatch>,
    /// Functions whose entries jump to a patch's code now, and the last pause that took.
    #[serde(default)]
    pub entries: EntryStatus,
    /// Panics that unwound out of a patch's code and rolled it back (rollback on panic), oldest
    /// first; the last few dozen.
    #[serde(default)]
    pub panics: Vec<PatchPanic>,
}

/// The entry redirects of a process (functions that are not `#[hot]`, redirected to a patch's
/// code by a jump written at their entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryStatus {
    /// How many functions are redirected now.
    pub redirected: usize,
    /// How long the last stop that wrote or restored entries kept the threads stopped, in
    /// microseconds.
    pub last_pause_us: Option<u64>,
}

/// What a patch did (or would do) to entry redirects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryReport {
    /// Functions redirected after it (for `check`: that the patch redirects).
    pub redirected: usize,
    /// Entries written with a jump.
    pub written: usize,
    /// Entries given back their original bytes.
    pub restored: usize,
    /// Redirected functions given new code without a stop.
    pub retargeted: usize,
    /// Threads stopped, or checked asleep (for `check`: the process's threads now).
    pub threads: usize,
    /// Of `threads`, those that block the stop signal (Mesa's, for one), checked asleep in the
    /// kernel throughout the write instead of stopped.
    #[serde(default)]
    pub foreign_threads: usize,
    /// How long the threads were stopped, in microseconds, if they were.
    pub pause_us: Option<u64>,
    /// For `check`: the pause expected from the process's threads now, in microseconds.
    #[serde(default)]
    pub expected_pause_us: Option<u64>,
}

/// A panic that unwound out of a patch's code, and the rollback it caused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchPanic {
    /// Counts from 1 in the process: a client shows each once.
    pub sequence: u64,
    /// The hot function whose patched code the panic unwound out of.
    pub function: String,
    /// The panic's message.
    pub message: String,
    /// Where it panicked (`file:line:column`), when the runtime's panic hook saw it.
    pub location: Option<String>,
    /// The thread that panicked.
    pub thread: String,
    /// Whether the call was run again on the previous version (otherwise the panic went on).
    pub rerun: bool,
    /// The patches rolled back, newest first; empty while the rollback is under way.
    pub rolled_back: Vec<String>,
    /// Why the rollback failed, if it did.
    pub error: Option<String>,
    /// Whether the rollback is finished (done or failed).
    pub settled: bool,
}

/// A thread found running a patch's code (its instruction sampled through a signal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadInPatch {
    /// The thread's id.
    pub tid: i32,
    /// Its name.
    pub name: String,
    /// The patch whose library holds the code.
    pub patch: String,
    /// The function the instruction is in, when the library names it.
    pub function: Option<String>,
    /// Since when it has been seen there, in milliseconds (0 the first time).
    pub for_ms: u64,
}

/// A patch of the patch directory set aside at start: a process that applied it crashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedPatch {
    /// The patch id.
    pub id: String,
    /// Where its file is now (`*.hotpatch.quarantined`).
    pub path: String,
    /// Which process crashed, and how.
    pub reason: String,
}

/// One hot function's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionStatus {
    /// The function's key.
    pub key: String,
    /// 0 for the binary's own code.
    pub version: u32,
    /// The id of the patch whose code runs, if any.
    pub patch: Option<String>,
}

/// A patch loaded into the process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedPatch {
    /// The patch id.
    pub id: String,
    /// The crates it rebuilt.
    pub crates: Vec<String>,
    /// Whether its code is active (not rolled back).
    pub active: bool,
    /// When it was applied, seconds since the Unix epoch.
    pub applied_unix: u64,
}

/// One commit or rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryItem {
    /// The table's update id.
    pub update_id: u64,
    /// The update's label (the patch id for patches).
    pub label: String,
    /// `committed` or `rolled_back`.
    pub action: String,
    /// Seconds since the Unix epoch.
    pub at_unix: u64,
    /// Each function changed.
    pub changes: Vec<FunctionChange>,
    /// Each state type migrated: the migration log.
    #[serde(default)]
    pub states: Vec<StateChange>,
    /// What it did to entry redirects, if it touched them.
    #[serde(default)]
    pub entries: Option<EntryReport>,
}

/// One `#[hot_state]` type's values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateStatus {
    /// The name its values are kept under.
    pub name: String,
    /// The version they have.
    pub version: u32,
    /// How many live values.
    pub values: usize,
}

/// One function's version change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionChange {
    /// The function's key.
    pub key: String,
    /// Version before.
    pub from: u32,
    /// Version after.
    pub to: u32,
}

/// What applying (or checking, or rolling back) a patch did or would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchReport {
    /// The patch id.
    pub patch_id: String,
    /// True for `Check`: nothing was changed.
    pub dry_run: bool,
    /// True when the patch was already applied and nothing was done.
    pub already_applied: bool,
    /// Hot functions whose code changes (or would change).
    pub changes: Vec<FunctionChange>,
    /// `#[hot_state]` types whose values are (or would be) migrated.
    #[serde(default)]
    pub states: Vec<StateChange>,
    /// Microseconds spent verifying the file.
    pub verify_us: u64,
    /// Microseconds spent loading the library.
    pub load_us: u64,
    /// Microseconds spent committing (waiting for safe points included).
    pub commit_us: u64,
    /// After a rollback: threads still running code of the patch it removed.
    #[serde(default)]
    pub still_running: Vec<ThreadInPatch>,
    /// What it did (or, for `check`, would do) to entry redirects, if the patch has any or
    /// removes earlier ones.
    #[serde(default)]
    pub entries: Option<EntryReport>,
}

/// One state type moved to another version by a commit or a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    /// The type's name.
    pub name: String,
    /// The version before.
    pub from: u32,
    /// The version after.
    pub to: u32,
    /// How many live values were migrated.
    pub values: usize,
}

/// The environment variable in which `cargo hotpatch run` and `watch` give the app they start the
/// secret of their link (the socket named by `HOTRELOAD_TOOL_SOCKET`).
pub const TOOL_SECRET_ENV: &str = "HOTRELOAD_TOOL_SECRET";

/// A line of the handshake that opens the link between the tool and the app it started, before
/// any request: the app sends a `challenge`; the tool answers with its `proof` for it and a
/// challenge of its own; the app answers with its `proof`. Each proof is [`link_proof`] of the
/// secret the tool gave the app, so a process without the secret can pose neither as the app nor
/// as the tool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkHandshake {
    /// Random hex the other side must prove the secret against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    /// [`link_proof`] of the other side's challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

/// Who proves: the tool or the app (so one side's proof is never a valid answer for the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRole {
    /// `cargo hotpatch run` or `watch`.
    Tool,
    /// The app it started.
    App,
}

/// The proof that `role` knows `secret`, for `challenge`: SHA-256 over the three, hex.
pub fn link_proof(secret: &str, role: LinkRole, challenge: &str) -> String {
    use sha2::{Digest, Sha256};
    let role = match role {
        LinkRole::Tool => "tool",
        LinkRole::App => "app",
    };
    let mut hasher = Sha256::new();
    for part in ["hotreload-link", role, secret, challenge] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    super::patch_file::hex(&hasher.finalize())
}

/// Whether `proof` is the `expected` one, compared in time independent of where they differ.
pub fn proof_matches(proof: Option<&str>, expected: &str) -> bool {
    let Some(proof) = proof else { return false };
    proof.len() == expected.len()
        && proof
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}
