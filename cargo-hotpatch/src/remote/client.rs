//! Typed calls to a running process over its control socket: one connection per call.

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use hotreload_runtime::wire::protocol::{PatchReport, Reply, Request, StatusReport};

use super::codec::{self, Peer};

/// Every step of applying `patch` short of changing anything.
pub fn check(socket: &Path, patch: &Path) -> anyhow::Result<PatchReport> {
    let path = patch.to_owned();
    codec::patch_report(
        request(socket, &Request::Check { path })?,
        Peer::Socket(socket),
    )
}

/// Verifies, loads and commits `patch`.
pub fn apply(socket: &Path, patch: &Path) -> anyhow::Result<PatchReport> {
    let path = patch.to_owned();
    codec::patch_report(
        request(socket, &Request::Apply { path })?,
        Peer::Socket(socket),
    )
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
    let stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot connect to the control socket {}; is the app running with `hotreload_runtime::init()`?",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    codec::exchange(&mut BufReader::new(stream), request, Peer::Socket(socket))
}
