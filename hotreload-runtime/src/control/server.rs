//! The control socket: a Unix listener, and a thread per connection serving it.

use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::access;
use super::audit;
use super::requests::{refuse_busy, serve_requests};

/// How long a client has to send each complete request line, counted from when the server starts
/// waiting for it (the connection opened, or the previous reply was sent): a client that sends
/// nothing, or a byte now and then, is closed after this long.
pub(crate) const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Connections served at once; one more is answered "busy" and closed.
const MAX_CONNECTIONS: usize = 64;

/// Connections being served now.
static OPEN_CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

/// Listens for control requests on the Unix socket at `path`, accepting connections on a thread
/// named `hotreload-control` and serving each on a thread of its own (`hotreload-conn`), so a
/// slow or silent client holds up no other. Checks, applies and rollbacks still happen one at a
/// time; each request line must arrive within [`REQUEST_DEADLINE`].
///
/// A socket file left at `path` by a process that is gone is replaced; a live one (something
/// accepts connections there) or a file of another kind is an error. The socket is made
/// accessible to its owner only (mode 0600), or with `HOTRELOAD_CONTROL_GROUP` to that group too
/// (mode 0660); on Linux connections from users other than this one, root and those listed in
/// `HOTRELOAD_ALLOWED_UIDS` are refused, and written to the audit log.
pub fn serve(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_path_buf();
    remove_stale_socket(&path)?;
    let listener = UnixListener::bind(&path)?;
    if let Err(error) = access::restrict_socket(&path) {
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
            Ok(stream) => accept(stream),
            Err(error) => {
                tracing::warn!(socket = %socket.display(), %error, "accepting a control connection failed");
                // Out of file descriptors and the like: do not spin.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Checks who connected and hands the connection to a thread of its own.
fn accept(stream: UnixStream) {
    let peer = match access::peer_credentials(&stream) {
        Ok(peer) => peer,
        Err(error) => {
            tracing::debug!(%error, "could not read a control peer's credentials");
            return;
        }
    };
    if !access::peer_allowed(peer) {
        tracing::warn!(
            ?peer,
            "refused a control connection from a user not allowed"
        );
        audit::refused(peer, "the user is not allowed (not this process's user, root, nor in HOTRELOAD_ALLOWED_UIDS)");
        return;
    }
    let slot = ConnectionSlot::take();
    if slot.is_none() {
        tracing::warn!(
            ?peer,
            "refused a control connection: {MAX_CONNECTIONS} are open"
        );
        audit::refused(peer, "too many control connections are open");
        refuse_busy(stream, MAX_CONNECTIONS);
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("hotreload-conn".into())
        .spawn(move || {
            let _slot = slot;
            if let Err(error) = serve_requests(stream, peer, Some(REQUEST_DEADLINE)) {
                tracing::debug!(%error, "control connection ended with an error");
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "could not start a thread for a control connection");
    }
}

/// One of the [`MAX_CONNECTIONS`] connections served at once, given back when dropped.
struct ConnectionSlot;

impl ConnectionSlot {
    fn take() -> Option<Self> {
        OPEN_CONNECTIONS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < MAX_CONNECTIONS).then_some(open + 1)
            })
            .ok()
            .map(|_| ConnectionSlot)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        OPEN_CONNECTIONS.fetch_sub(1, Ordering::AcqRel);
    }
}
