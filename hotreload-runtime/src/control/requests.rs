//! One connection's requests: each line read within its deadline, answered by one line.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::audit::{self, Peer};
use crate::error::Error;
use crate::wire::protocol::{ErrorReply, Request, Response};

/// The longest request line accepted.
const MAX_LINE: usize = 1 << 20;
/// A reply the client does not read within this long is dropped with its connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers one request per line until the peer closes the connection, sends a malformed one, or
/// takes longer than `deadline` to send a whole line (`None`: no deadline, for the tool's link).
pub(crate) fn serve_requests(
    stream: UnixStream,
    peer: Option<Peer>,
    deadline: Option<Duration>,
) -> io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut lines = LineReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let text = match lines.next_line(deadline.map(|d| Instant::now() + d))? {
            Line::Closed => return Ok(()),
            Line::TimedOut => {
                let waited = deadline.unwrap_or_default();
                tracing::debug!(?peer, "a control client sent no complete request in time");
                let reason = format!(
                    "no complete request line arrived within {waited:?}; send each request as one line"
                );
                return refuse(&mut writer, peer, reason, "");
            }
            Line::TooLong => {
                let reason = format!("the request is longer than {MAX_LINE} bytes");
                return refuse(&mut writer, peer, reason, "");
            }
            Line::Text(text) => text,
        };
        let Ok(text) = String::from_utf8(text) else {
            return refuse(&mut writer, peer, "the request is not UTF-8".into(), "");
        };
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Request>(text.trim()) {
            Ok(request) => {
                tracing::debug!(?request, "control request");
                let started = Instant::now();
                let response = super::handle(request.clone());
                audit::record(peer, Ok(&request), &response, started.elapsed());
                write_response(&mut writer, &response)?;
            }
            Err(error) => return refuse(&mut writer, peer, error.to_string(), text.trim()),
        }
    }
}

/// Answers a malformed or late request with an error naming step `request`, and closes the
/// connection.
fn refuse(
    writer: &mut UnixStream,
    peer: Option<Peer>,
    reason: String,
    line: &str,
) -> io::Result<()> {
    let error = Error::Request { reason };
    tracing::warn!(%error, "malformed control request");
    let response = Response::Error(ErrorReply {
        step: error.step().to_owned(),
        message: error.to_string(),
    });
    audit::record(peer, Err(line), &response, Duration::ZERO);
    write_response(writer, &response)?;
    let _ = writer.shutdown(std::net::Shutdown::Both);
    Ok(())
}

/// Tells a client that connected while `open` connections were being served to come back later.
pub(crate) fn refuse_busy(mut stream: UnixStream, open: usize) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let response = Response::Error(ErrorReply {
        step: "request".to_owned(),
        message: format!(
            "the process is serving {open} control connections already; try again when one of them has finished"
        ),
    });
    let _ = write_response(&mut stream, &response);
}

fn write_response(writer: &mut UnixStream, response: &Response) -> io::Result<()> {
    let mut text = serde_json::to_string(response).map_err(io::Error::other)?;
    text.push('\n');
    writer.write_all(text.as_bytes())?;
    writer.flush()
}

/// What [`LineReader::next_line`] read.
enum Line {
    /// A line, without its newline (the last one may have none).
    Text(Vec<u8>),
    /// The peer closed the connection after its last line.
    Closed,
    /// No whole line arrived before the deadline.
    TimedOut,
    /// The line is longer than [`MAX_LINE`].
    TooLong,
}

/// Lines of a stream, each read against a deadline for the whole line rather than for each read,
/// so a client sending a byte now and then cannot hold its connection forever.
struct LineReader {
    stream: UnixStream,
    /// Bytes read past the last line returned.
    pending: Vec<u8>,
}

impl LineReader {
    fn new(stream: UnixStream) -> Self {
        LineReader {
            stream,
            pending: Vec::new(),
        }
    }

    fn next_line(&mut self, deadline: Option<Instant>) -> io::Result<Line> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=end).collect();
                line.pop();
                return Ok(Line::Text(line));
            }
            if self.pending.len() > MAX_LINE {
                return Ok(Line::TooLong);
            }
            let timeout = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(Line::TimedOut),
                },
                None => None,
            };
            self.stream.set_read_timeout(timeout)?;
            match self.stream.read(&mut chunk) {
                Ok(0) if self.pending.is_empty() => return Ok(Line::Closed),
                Ok(0) => return Ok(Line::Text(std::mem::take(&mut self.pending))),
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(Line::TimedOut)
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }
}
