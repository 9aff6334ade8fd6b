//! The control protocol on the wire: one JSON request per line, answered by one JSON response per
//! line. Both ways of reaching a process (its control socket, the tool socket an app connects back
//! to) exchange through [`exchange`], and a reply of the wrong kind becomes one error here.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::Context as _;
use hotreload_runtime::wire::protocol::{
    PatchPanic, PatchReport, Reply, Request, Response, StatusReport,
};

/// Who is at the other end, as messages name it.
#[derive(Debug, Clone, Copy)]
pub enum Peer<'a> {
    /// A process reached through its control socket.
    Socket(&'a Path),
    /// The app connected to this tool's socket.
    App,
}

/// The peer answered with an error: it refused the request at a step, and nothing changed on it.
#[derive(Debug, thiserror::Error)]
#[error("{peer} refused at step `{step}`: {message}")]
pub struct Refused {
    /// The peer, as messages name it.
    pub peer: String,
    /// The step that failed (`integrity`, `signature`, `base_build`, ...).
    pub step: String,
    /// What happened and what to do.
    pub message: String,
}

/// The peer answered with a reply that does not answer the request.
#[derive(Debug, thiserror::Error)]
#[error("{peer} answered with an unexpected reply")]
pub struct UnexpectedReply {
    /// The peer, as messages name it.
    pub peer: String,
}

impl Peer<'_> {
    fn name(self) -> String {
        match self {
            Peer::Socket(socket) => socket.display().to_string(),
            Peer::App => "the app".to_owned(),
        }
    }

    fn sending(self) -> String {
        match self {
            Peer::Socket(socket) => format!("sending to {}", socket.display()),
            Peer::App => "sending to the app".to_owned(),
        }
    }

    fn reading(self) -> String {
        match self {
            Peer::Socket(socket) => format!("reading the answer from {}", socket.display()),
            Peer::App => "reading the app's answer".to_owned(),
        }
    }

    fn parsing(self, answer: &str) -> String {
        match self {
            Peer::Socket(socket) => format!("parsing the answer of {}: {answer}", socket.display()),
            Peer::App => format!("parsing the app's answer: {answer}"),
        }
    }

    fn closed(self) -> String {
        match self {
            Peer::Socket(socket) => {
                format!(
                    "{} closed the connection without answering",
                    socket.display()
                )
            }
            Peer::App => "the app closed its connection to the tool".to_owned(),
        }
    }
}

/// Sends one request on a connection and reads its answer; an error answer becomes [`Refused`].
pub fn exchange(
    connection: &mut BufReader<UnixStream>,
    request: &Request,
    peer: Peer<'_>,
) -> anyhow::Result<Reply> {
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    connection
        .get_mut()
        .write_all(line.as_bytes())
        .with_context(|| peer.sending())?;
    let mut answer = String::new();
    match connection.read_line(&mut answer) {
        // A peer that closes with the request unread resets the connection: it refused it.
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
            anyhow::bail!(peer.closed())
        }
        read => read.with_context(|| peer.reading())?,
    };
    if answer.is_empty() {
        anyhow::bail!(peer.closed());
    }
    match serde_json::from_str::<Response>(&answer).with_context(|| peer.parsing(&answer))? {
        Response::Ok(reply) => Ok(reply),
        Response::Error(error) => Err(Refused {
            peer: peer.name(),
            step: error.step,
            message: error.message,
        }
        .into()),
    }
}

/// The report of a `Check` or `Apply`.
pub fn patch_report(reply: Reply, peer: Peer<'_>) -> anyhow::Result<PatchReport> {
    match reply {
        Reply::Patch(report) => Ok(report),
        _ => Err(unexpected(peer)),
    }
}

/// The report of a `Rollback`.
pub fn rollback_report(reply: Reply, peer: Peer<'_>) -> anyhow::Result<PatchReport> {
    match reply {
        Reply::RolledBack(report) => Ok(report),
        _ => Err(unexpected(peer)),
    }
}

/// The answer to `Panics`.
pub fn panics(reply: Reply, peer: Peer<'_>) -> anyhow::Result<Vec<PatchPanic>> {
    match reply {
        Reply::Panics { panics } => Ok(panics),
        _ => Err(unexpected(peer)),
    }
}

/// The report of a `Status`.
pub fn status_report(reply: Reply, peer: Peer<'_>) -> anyhow::Result<StatusReport> {
    match reply {
        Reply::Status(report) => Ok(report),
        _ => Err(unexpected(peer)),
    }
}

fn unexpected(peer: Peer<'_>) -> anyhow::Error {
    UnexpectedReply { peer: peer.name() }.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotreload_runtime::wire::protocol::ErrorReply;

    /// A peer that answers each request line with `answer`.
    fn answering(answer: Response) -> BufReader<UnixStream> {
        let (ours, theirs) = UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            let mut theirs = BufReader::new(theirs);
            let mut line = String::new();
            theirs.read_line(&mut line).unwrap();
            let request: Request = serde_json::from_str(&line).unwrap();
            assert_eq!(request, Request::Status);
            let mut answer = serde_json::to_string(&answer).unwrap();
            answer.push('\n');
            theirs.get_mut().write_all(answer.as_bytes()).unwrap();
        });
        BufReader::new(ours)
    }

    #[test]
    fn an_error_answer_is_a_typed_refusal_naming_the_peer_and_step() {
        let mut connection = answering(Response::Error(ErrorReply {
            step: "signature".into(),
            message: "unsigned".into(),
        }));
        let socket = Path::new("/run/app.sock");
        let error = exchange(&mut connection, &Request::Status, Peer::Socket(socket)).unwrap_err();
        let refused = error.downcast_ref::<Refused>().expect("a refusal");
        assert_eq!(refused.step, "signature");
        assert_eq!(
            error.to_string(),
            "/run/app.sock refused at step `signature`: unsigned"
        );
    }

    #[test]
    fn a_reply_of_the_wrong_kind_is_one_error() {
        let mut connection = answering(Response::Ok(Reply::Hello {
            protocol: 1,
            pid: 7,
            build_id: "ab".into(),
        }));
        let reply = exchange(&mut connection, &Request::Status, Peer::App).unwrap();
        let error = status_report(reply, Peer::App).unwrap_err();
        assert!(error.is::<UnexpectedReply>());
        assert_eq!(
            error.to_string(),
            "the app answered with an unexpected reply"
        );
    }
}
