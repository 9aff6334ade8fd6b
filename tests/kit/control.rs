//! Requests on an app's control socket, sent as the tool sends them, and what the tests read
//! from patch files.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use hotreload_runtime::wire::patch_file::PatchFile;
use hotreload_runtime::wire::protocol::{Reply, Request, Response};

/// One request on the control socket, as the tool sends it.
pub fn request(socket: &Path, request: &Request) -> Result<Reply, String> {
    let stream = UnixStream::connect(socket).map_err(|e| format!("connecting: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut line = serde_json::to_string(request).map_err(|e| e.to_string())?;
    line.push('\n');
    (&stream)
        .write_all(line.as_bytes())
        .map_err(|e| format!("sending: {e}"))?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(|e| format!("reading: {e}"))?;
    match serde_json::from_str::<Response>(&answer).map_err(|e| format!("{e}: {answer:?}"))? {
        Response::Ok(reply) => Ok(reply),
        Response::Error(error) => Err(format!("refused at `{}`: {}", error.step, error.message)),
    }
}

/// The pid of the process answering `hello` on `socket`.
pub fn hello(socket: &Path) -> Result<u32, String> {
    match request(socket, &Request::Hello)? {
        Reply::Hello { pid, .. } => Ok(pid),
        other => Err(format!(
            "`hello` was answered with another reply: {other:?}"
        )),
    }
}

/// The patch id of a patch file.
pub fn patch_id(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("reading a patch file");
    PatchFile::parse(&bytes).expect("a valid patch file").id
}
