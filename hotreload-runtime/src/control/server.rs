//! The control socket: a Unix listener and the thread that serves it.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::audit::{self, Peer};
use crate::error::Error;
use crate::wire::protocol::{ErrorReply, Request, Response};

/// The longest request line accepted.
const MAX_LINE: usize = 1 << 20;
/// A connection that sends nothing for this long is closed, so it cannot hold up the next one.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A reply the client does not read within this long is dropped with its connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Listens for control requests on the Unix socket at `path` and serves them from a thread named
/// `hotreload-control`, one connection at a time.
///
/// A socket file left at `path` by a process that is gone is replaced; a live one (something
/// accepts connections there) or a file of another kind is an error. The socket is made
/// accessible to its owner only (mode 0600), and on Linux connections from other users (root
/// excepted) are refused.
pub fn serve(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_path_buf();
    remove_stale_socket(&path)?;
    let listener = UnixListener::bind(&path)?;
    if let Err(error) = fs::set_permissions(&path, fs::Permissions::from_mode(0o600)) {
        let _ = fs::remove_file(&path);
        return Err(error);
    }
    let socket = path.clone();
    std::thread::Builder::new()
        .name("hotreload-control".into())
        .spawn(move || accept_loop(listener, socket))?;
    tracing::info!(socket = %path.display(), "hotreload control socket listening");
    Ok(())
}

fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    if !metadata.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "`{}` exists and is not a socket; choose another HOTRELOAD_CONTROL_SOCKET path",
                path.display()
            ),
        ));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "another process is serving the control socket `{}`; give each process its own path",
                path.display()
            ),
        ));
    }
    tracing::debug!(socket = %path.display(), "removing a stale control socket");
    fs::remove_file(path)
}

fn accept_loop(listener: UnixListener, socket: PathBuf) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if let Err(error) = serve_connection(stream) {
                    tracing::debug!(%error, "control connection ended with an error");
                }
            }
            Err(error) => {
                tracing::warn!(socket = %socket.display(), %error, "accepting a control connection failed");
                // Out of file descriptors and the like: do not spin.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Connects to the tool listening at `path` (retrying briefly while it starts) and serves its
/// requests on that connection from a thread named `hotreload-tool`, for as long as it is open.
pub fn connect(path: &Path) -> io::Result<()> {
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
            // The tool keeps the connection open while it runs: no idle timeout.
            if let Err(error) = serve_requests(stream, None) {
                tracing::warn!(%error, "the connection to the tool failed");
            }
        })?;
    Ok(())
}

fn serve_connection(stream: UnixStream) -> io::Result<()> {
    let peer = peer_credentials(&stream)?;
    if !peer_allowed(peer) {
        tracing::warn!(
            ?peer,
            "refused a control connection from a user not allowed"
        );
        return Ok(());
    }
    serve_requests(stream, Some(IDLE_TIMEOUT))
}

/// Answers one request per line until the peer closes the connection or sends a malformed one.
fn serve_requests(stream: UnixStream, idle_timeout: Option<Duration>) -> io::Result<()> {
    let peer = peer_credentials(&stream).ok().flatten();
    stream.set_read_timeout(idle_timeout)?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    loop {
        line.clear();
        let read = (&mut reader).take(MAX_LINE as u64 + 1).read_line(&mut line);
        let request = match read {
            Ok(0) => return Ok(()),
            Ok(_) if line.len() > MAX_LINE => {
                Err(format!("the request is longer than {MAX_LINE} bytes"))
            }
            Ok(_) if line.trim().is_empty() => continue,
            Ok(_) => {
                serde_json::from_str::<Request>(line.trim()).map_err(|error| format!("{error}"))
            }
            Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                Err("the request is not UTF-8".to_owned())
            }
            Err(error) => return Err(error),
        };
        match request {
            Ok(request) => {
                tracing::debug!(?request, "control request");
                let started = Instant::now();
                let response = super::handle(request.clone());
                audit::record(peer, Ok(&request), &response, started.elapsed());
                write_response(&mut writer, &response)?;
            }
            Err(reason) => {
                let error = Error::Request { reason };
                tracing::warn!(%error, "malformed control request");
                let response = Response::Error(ErrorReply {
                    step: error.step().to_owned(),
                    message: error.to_string(),
                });
                audit::record(peer, Err(line.trim()), &response, Duration::ZERO);
                write_response(&mut writer, &response)?;
                let _ = writer.shutdown(std::net::Shutdown::Both);
                return Ok(());
            }
        }
    }
}

fn write_response(writer: &mut UnixStream, response: &Response) -> io::Result<()> {
    let mut text = serde_json::to_string(response).map_err(io::Error::other)?;
    text.push('\n');
    writer.write_all(text.as_bytes())?;
    writer.flush()
}

/// The peer's user and process ids, from the kernel (`SO_PEERCRED`).
#[cfg(target_os = "linux")]
fn peer_credentials(stream: &UnixStream) -> io::Result<Option<Peer>> {
    use std::os::fd::AsRawFd;

    let mut credentials = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the descriptor is the stream's, open for the call; `credentials` and `len` are
    // valid for writes and `len` holds the buffer's size.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut credentials as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(Peer {
        uid: credentials.uid,
        pid: credentials.pid,
    }))
}

#[cfg(not(target_os = "linux"))]
fn peer_credentials(_stream: &UnixStream) -> io::Result<Option<Peer>> {
    Ok(None)
}

/// Whether the peer may send requests: this process's user, root, or a user listed in
/// `HOTRELOAD_ALLOWED_UIDS` (comma-separated). Without credentials (not Linux), the socket's
/// mode (0600) is the only guard.
#[cfg(target_os = "linux")]
fn peer_allowed(peer: Option<Peer>) -> bool {
    let Some(peer) = peer else { return false };
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    peer.uid == me || peer.uid == 0 || allowed_uids().contains(&peer.uid)
}

#[cfg(target_os = "linux")]
fn allowed_uids() -> &'static [u32] {
    static ALLOWED: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    ALLOWED.get_or_init(|| {
        std::env::var("HOTRELOAD_ALLOWED_UIDS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|uid| uid.trim().parse().ok())
            .collect()
    })
}

#[cfg(not(target_os = "linux"))]
fn peer_allowed(_peer: Option<Peer>) -> bool {
    true
}
