//! Talking to a running process over its control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use hotreload_runtime::control::protocol::{Reply, Request, Response};

/// Sends one request and returns the reply; an error reply becomes an error naming its step.
pub fn request(socket: &Path, request: &Request) -> anyhow::Result<Reply> {
    let stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot connect to the control socket {}; is the app running with `hotreload_runtime::init()`?",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    (&stream)
        .write_all(line.as_bytes())
        .with_context(|| format!("sending to {}", socket.display()))?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .with_context(|| format!("reading the answer from {}", socket.display()))?;
    if answer.is_empty() {
        bail!(
            "{} closed the connection without answering",
            socket.display()
        );
    }
    match serde_json::from_str::<Response>(&answer)
        .with_context(|| format!("parsing the answer of {}: {answer}", socket.display()))?
    {
        Response::Ok(reply) => Ok(reply),
        Response::Error(error) => bail!(
            "{} refused at step `{}`: {}",
            socket.display(),
            error.step,
            error.message
        ),
    }
}
