//! The link to the tool that started this process (`cargo hotpatch run` or `watch`): connected
//! to, authenticated both ways with the secret the tool put in the environment, then served.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::requests::serve_requests;
use crate::wire::patch_file::hex;
use crate::wire::protocol::{link_proof, proof_matches, LinkHandshake, LinkRole, TOOL_SECRET_ENV};

/// How long the tool has to answer the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest handshake line read.
const MAX_HANDSHAKE_LINE: usize = 1024;

/// Connects to the tool listening at `path` (retrying briefly while it starts), checks it is the
/// tool that started this process and proves this is its app, with the secret in
/// `HOTRELOAD_TOOL_SECRET`; then serves its requests on that connection from a thread named
/// `hotreload-tool`, for as long as it is open. The secret is read once and wiped from the
/// process's environment block (which other processes of the user can read).
pub fn connect(path: &Path) -> io::Result<()> {
    let secret = take_secret().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{TOOL_SECRET_ENV} is not set: the link to the tool cannot be authenticated; start the app with `cargo hotpatch run` or `watch`"),
        )
    })?;
    let mut attempts = 0;
    let stream = loop {
        match UnixStream::connect(path) {
            Ok(stream) => break stream,
            Err(error) if attempts < 50 => {
                attempts += 1;
                tracing::debug!(%error, "waiting for the tool's socket");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => return Err(error),
        }
    };
    std::thread::Builder::new()
        .name("hotreload-tool".into())
        .spawn(move || {
            if let Err(error) = authenticate(&stream, &secret) {
                tracing::error!(%error, "refused the link to the tool");
                return;
            }
            // Development: patches redirect entries without being asked to.
            crate::patch::mark_linked_to_tool();
            // The tool keeps the connection open while it runs: no deadline.
            if let Err(error) = serve_requests(stream, None, None) {
                tracing::warn!(%error, "the connection to the tool failed");
            }
        })?;
    Ok(())
}

/// The handshake, the app's side: challenge the tool, check its proof, answer its challenge.
fn authenticate(stream: &UnixStream, secret: &str) -> io::Result<()> {
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let challenge = random_hex()?;
    write_line(
        stream,
        &LinkHandshake {
            challenge: Some(challenge.clone()),
            proof: None,
        },
    )?;
    let answer = read_line(stream)?;
    let expected = link_proof(secret, LinkRole::Tool, &challenge);
    if !proof_matches(answer.proof.as_deref(), &expected) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the process at HOTRELOAD_TOOL_SOCKET did not prove it is the tool that started this one (wrong secret)",
        ));
    }
    let theirs = answer.challenge.unwrap_or_default();
    write_line(
        stream,
        &LinkHandshake {
            challenge: None,
            proof: Some(link_proof(secret, LinkRole::App, &theirs)),
        },
    )?;
    stream.set_read_timeout(None)
}

fn write_line(mut stream: &UnixStream, line: &LinkHandshake) -> io::Result<()> {
    let mut text = serde_json::to_string(line).map_err(io::Error::other)?;
    text.push('\n');
    stream.write_all(text.as_bytes())
}

/// One handshake line, read a byte at a time so that nothing after it is consumed.
fn read_line(mut stream: &UnixStream) -> io::Result<LinkHandshake> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < MAX_HANDSHAKE_LINE {
        if stream.read(&mut byte)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the tool closed the link during the handshake",
            ));
        }
        if byte[0] == b'\n' {
            return serde_json::from_slice(&line)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error));
        }
        line.push(byte[0]);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "the tool's handshake line is too long",
    ))
}

/// 16 random bytes from the kernel, hex.
fn random_hex() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    // SAFETY: `bytes` is valid for writes of its length.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if got != bytes.len() as isize {
        return Err(io::Error::last_os_error());
    }
    Ok(hex(&bytes))
}

/// The secret in `HOTRELOAD_TOOL_SECRET`, whose bytes in the environment block are then
/// overwritten: `/proc/PID/environ` is readable by every process of the same user.
fn take_secret() -> Option<String> {
    let secret = std::env::var(TOOL_SECRET_ENV)
        .ok()
        .filter(|s| !s.is_empty())?;
    let name = std::ffi::CString::new(TOOL_SECRET_ENV).ok()?;
    // SAFETY: `name` is NUL-terminated. `getenv` returns null or a pointer to the variable's
    // NUL-terminated value inside the environment block, which stays allocated and writable;
    // the value is overwritten in place, keeping its length and terminator, and this runtime is
    // the only reader of this variable.
    unsafe {
        let value = libc::getenv(name.as_ptr());
        if !value.is_null() {
            let len = libc::strlen(value);
            std::ptr::write_bytes(value, b'-', len);
        }
    }
    Some(secret)
}
