//! The control channel of a running process: how `cargo hotpatch` talks to it.
//!
//! [`serve`] listens on a Unix socket (what [`init`](crate::init) does when
//! `HOTRELOAD_CONTROL_SOCKET` names a path); [`connect`] connects to the tool that started the
//! process (what `init` does when `HOTRELOAD_TOOL_SOCKET` names one, under `cargo hotpatch run`
//! and `watch`, after both sides proved they know the secret the tool gave the app) and serves
//! its requests on that connection. A thread named `hotreload-control` accepts connections and
//! serves each on a thread of its own (checks, applies and rollbacks still happen one at a time):
//! each line it reads is one JSON [`Request`], answered by one JSON [`Response`] line. A line
//! that is not a known request, or that does not arrive whole within the request deadline, gets
//! an error with step `request` and the connection is closed; the process carries on.

#[cfg(unix)]
mod access;
#[cfg(unix)]
pub(crate) mod audit;
#[cfg(unix)]
mod link;
#[cfg(unix)]
mod requests;
#[cfg(unix)]
mod server;

use std::panic::{self, AssertUnwindSafe};

use crate::patch;
use crate::wire::protocol::{ErrorReply, Reply, Request, Response, PROTOCOL_VERSION};

#[cfg(unix)]
pub use link::connect;
#[cfg(unix)]
pub use server::serve;

/// Would connect to the tool; this platform has no Unix sockets, so it says so.
#[cfg(not(unix))]
pub fn connect(path: &std::path::Path) -> std::io::Result<()> {
    let _ = path;
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "live patching is only supported on Linux for now",
    ))
}

/// Would listen for control requests on the Unix socket at `path`; this platform has no Unix
/// sockets, so it says so.
#[cfg(not(unix))]
pub fn serve(path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
    let _ = path;
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "live patching is only supported on Linux for now",
    ))
}

/// Answers one request, as the control server does: `Hello`, `Status`, `Check`, `Apply` and
/// `Rollback` run [`patch`]'s functions. A failure is an error response naming the
/// step that failed; nothing changed then.
pub fn handle(request: Request) -> Response {
    let is_rollback = matches!(request, Request::Rollback);
    let result = panic::catch_unwind(AssertUnwindSafe(|| answer(request)));
    match result {
        Ok(Ok(reply)) => Response::Ok(reply),
        Ok(Err(error)) => Response::Error(ErrorReply {
            // A rollback that fails (nothing applied, or threads that do not reach a safe point)
            // fails at the rollback step, whatever the error.
            step: if is_rollback {
                "rollback"
            } else {
                error.step()
            }
            .to_owned(),
            message: error.to_string(),
        }),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            tracing::error!(panic = %what, "control request panicked");
            Response::Error(ErrorReply {
                step: "internal".to_owned(),
                message: format!("the runtime panicked while answering the request: {what}; this is a bug in hotreload-runtime, please report it"),
            })
        }
    }
}

fn answer(request: Request) -> Result<Reply, crate::Error> {
    Ok(match request {
        Request::Hello => Reply::Hello {
            protocol: PROTOCOL_VERSION,
            pid: std::process::id(),
            build_id: patch::build_id()?.to_owned(),
        },
        Request::Status => Reply::Status(patch::status()),
        Request::Check { path } => Reply::Patch(patch::check(&path)?),
        Request::Apply {
            path,
            allow_entry_redirects,
        } => Reply::Patch(patch::apply_with(
            &path,
            patch::ApplyOptions {
                allow_entry_redirects,
            },
        )?),
        Request::Rollback => Reply::RolledBack(patch::rollback()?),
    })
}
