//! Typed calls to a running process over its control socket: one connection per call.
//!
//! An `apply` waits as long as the process itself may take: its commit deadline (from `status`)
//! twice over (safe points, then state locks and migrations) and a margin, or
//! `HOTPATCH_REPLY_TIMEOUT_MS`. A request sent but not answered in that time is resolved by asking
//! the process what happened: `status` is polled until the patch is no longer being applied, and
//! says whether it is applied. The outcome is never guessed: if the process cannot tell, the
//! error is [`Unresolved`].

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hotreload_runtime::wire::patch_file::{short_id, PatchFile};
use hotreload_runtime::wire::protocol::{PatchReport, Reply, Request, StatusReport};

use super::codec::{self, Peer, Refused};
use crate::shell::status as status_line;

/// Added to twice the process's commit deadline: verifying and loading, a busy machine.
const MARGIN: Duration = Duration::from_secs(30);
/// The wait for requests that do not commit, and for `apply` when the process does not say.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// Whether a request sent to a process took effect could not be learned: its answer did not come
/// and its status could not be read either. Nothing may be assumed about it.
#[derive(Debug, thiserror::Error)]
#[error("{socket}: no answer to `apply`, and its status could not be read to learn whether patch {patch} was applied: check with `cargo hotpatch status --target {socket}`")]
pub struct Unresolved {
    /// The control socket.
    pub socket: String,
    /// The patch's short id.
    pub patch: String,
}

/// The process exited before answering `apply`: its control socket no longer accepts
/// connections. Whether it took the patch no longer matters; nothing more can happen to it.
#[derive(Debug, thiserror::Error)]
#[error("{socket}: the process exited before answering `apply` of patch {patch} (its control socket no longer accepts connections)")]
pub struct ProcessGone {
    /// The control socket.
    pub socket: String,
    /// The patch's short id.
    pub patch: String,
}

/// Whether `error` says nobody listens on the socket any more (the process is gone).
fn nobody_listens(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            )
        })
    })
}

/// Every step of applying `patch` short of changing anything.
pub fn check(socket: &Path, patch: &Path) -> anyhow::Result<PatchReport> {
    let path = patch.to_owned();
    codec::patch_report(
        request(socket, &Request::Check { path })?,
        Peer::Socket(socket),
    )
}

/// Verifies, loads and commits `patch`; when its answer does not come in time, what the process's
/// status says happened (see the module documentation).
pub fn apply(socket: &Path, patch: &Path) -> anyhow::Result<PatchReport> {
    apply_allowing(socket, patch, false)
}

/// [`apply`], letting the patch redirect the entries of functions that are not `#[hot]` if
/// `allow_entry_redirects` (a process under `run` or `watch` lets it anyway).
pub fn apply_allowing(
    socket: &Path,
    patch: &Path,
    allow_entry_redirects: bool,
) -> anyhow::Result<PatchReport> {
    let commit_deadline = status(socket)
        .ok()
        .map(|status| 2 * Duration::from_millis(status.commit_timeout_ms) + MARGIN);
    let wait = reply_timeout_override()
        .or(commit_deadline)
        .unwrap_or(DEFAULT_WAIT);
    let request = Request::Apply {
        path: patch.to_owned(),
        allow_entry_redirects,
    };
    let mut connection = connect(socket)?;
    connection.get_ref().set_read_timeout(Some(wait))?;
    match codec::exchange(&mut connection, &request, Peer::Socket(socket)) {
        Ok(reply) => codec::patch_report(reply, Peer::Socket(socket)),
        Err(error) if error.chain().any(|cause| cause.is::<Refused>()) => Err(error),
        Err(error) => {
            // Closed first: a server that serves one connection at a time must see it end to
            // answer the next one.
            drop(connection);
            let id = patch_id(patch)?;
            status_line(
                "Waiting",
                format!(
                    "no answer from {} within {wait:?} ({error:#}); asking it whether patch {} was applied",
                    socket.display(),
                    short_id(&id)
                ),
            );
            let why = format!("{error:#}");
            resolve(socket, &id, &why, commit_deadline.unwrap_or(DEFAULT_WAIT))
        }
    }
}

/// The id of the patch file at `patch`, read as the process reads it: a named pipe or a device
/// must not hold the tool either (the process, asked first, refuses those itself).
fn patch_id(patch: &Path) -> anyhow::Result<String> {
    let bytes = hotreload_runtime::read_patch_file(patch)
        .with_context(|| format!("reading {}", patch.display()))?;
    Ok(PatchFile::parse(&bytes)
        .with_context(|| format!("reading {}", patch.display()))?
        .id)
}

/// What happened to an `apply` of patch `id` whose answer did not come (`why`): polls `status`
/// for up to `within` until the patch is no longer being applied.
fn resolve(socket: &Path, id: &str, why: &str, within: Duration) -> anyhow::Result<PatchReport> {
    let until = Instant::now() + within;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let asked = request_within(socket, &Request::Status, left.max(Duration::from_secs(1)))
            .and_then(|reply| codec::status_report(reply, Peer::Socket(socket)));
        match asked {
            Ok(status) if status.applying.as_deref() != Some(id) => {
                let active = status.patches.iter().any(|p| p.id == id && p.active);
                return if active {
                    status_line(
                        "Resolved",
                        format!("{} shows patch {} applied", socket.display(), short_id(id)),
                    );
                    Ok(applied_without_report(id))
                } else {
                    Err(Refused {
                        peer: socket.display().to_string(),
                        step: "unanswered".to_owned(),
                        message: format!("no answer to `apply` came ({why}), and its status afterwards shows patch {} not applied: nothing changed on it; its log or audit log says why", short_id(id)),
                    }
                    .into())
                };
            }
            Ok(_) => {}
            Err(error) if nobody_listens(&error) => {
                return Err(anyhow::Error::new(ProcessGone {
                    socket: socket.display().to_string(),
                    patch: short_id(id).to_owned(),
                })
                .context(format!("{error:#}")))
            }
            Err(error) if Instant::now() >= until => {
                return Err(anyhow::Error::new(Unresolved {
                    socket: socket.display().to_string(),
                    patch: short_id(id).to_owned(),
                })
                .context(format!("{error:#}")))
            }
            Err(_) => {}
        }
        if Instant::now() >= until {
            return Err(Unresolved {
                socket: socket.display().to_string(),
                patch: short_id(id).to_owned(),
            }
            .into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The report of an `apply` whose answer was lost but which the process's status shows applied:
/// what it changed is in that status.
fn applied_without_report(id: &str) -> PatchReport {
    PatchReport {
        patch_id: id.to_owned(),
        dry_run: false,
        already_applied: false,
        changes: Vec::new(),
        states: Vec::new(),
        verify_us: 0,
        load_us: 0,
        commit_us: 0,
        still_running: Vec::new(),
        entries: None,
    }
}

/// `HOTPATCH_REPLY_TIMEOUT_MS`, if set: how long to wait for an `apply`'s answer before asking the
/// process what happened.
fn reply_timeout_override() -> Option<Duration> {
    std::env::var("HOTPATCH_REPLY_TIMEOUT_MS")
        .ok()
        .and_then(|ms| ms.trim().parse().ok())
        .map(Duration::from_millis)
}

/// Undoes the last patch applied.
pub fn rollback(socket: &Path) -> anyhow::Result<PatchReport> {
    codec::rollback_report(request(socket, &Request::Rollback)?, Peer::Socket(socket))
}

/// The hot functions, patches and history.
pub fn status(socket: &Path) -> anyhow::Result<StatusReport> {
    codec::status_report(request(socket, &Request::Status)?, Peer::Socket(socket))
}

/// Sends one request and returns the reply; an error reply becomes a [`codec::Refused`].
pub fn request(socket: &Path, request: &Request) -> anyhow::Result<Reply> {
    request_within(socket, request, DEFAULT_WAIT)
}

fn request_within(socket: &Path, request: &Request, wait: Duration) -> anyhow::Result<Reply> {
    let mut connection = connect(socket)?;
    connection.get_ref().set_read_timeout(Some(wait))?;
    codec::exchange(&mut connection, request, Peer::Socket(socket))
}

fn connect(socket: &Path) -> anyhow::Result<BufReader<UnixStream>> {
    let stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot connect to the control socket {}; is the app running with `hotreload_runtime::init()`?",
            socket.display()
        )
    })?;
    Ok(BufReader::new(stream))
}
