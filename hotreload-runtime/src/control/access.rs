//! Who may use the control socket: the socket file's mode and group, and the peer's user id as
//! the kernel reports it.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::audit::Peer;

/// Makes the socket at `path` reachable by its owner only (mode 0600) or, with
/// `HOTRELOAD_CONTROL_GROUP` naming a group (by name or id), by that group's members too (mode
/// 0660, owned by that group): the users listed in `HOTRELOAD_ALLOWED_UIDS` can then connect if
/// they are members. Without a group, an allow-list can have no effect, which is logged.
pub(crate) fn restrict_socket(path: &Path) -> io::Result<()> {
    let group = std::env::var("HOTRELOAD_CONTROL_GROUP")
        .ok()
        .filter(|g| !g.trim().is_empty());
    let Some(group) = group else {
        if allowed_uids().iter().any(|&uid| uid != 0) {
            tracing::warn!(
                "HOTRELOAD_ALLOWED_UIDS has no effect while the control socket is mode 0600: set HOTRELOAD_CONTROL_GROUP to a group those users are members of"
            );
        }
        return fs::set_permissions(path, fs::Permissions::from_mode(0o600));
    };
    let gid = group_id(group.trim())?;
    std::os::unix::fs::lchown(path, None, Some(gid)).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("giving the control socket to group {group} (HOTRELOAD_CONTROL_GROUP) failed: {error}; this process's user must be a member of it"),
        )
    })?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o660))
}

/// A group's id, from its number or its name.
fn group_id(group: &str) -> io::Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let name = std::ffi::CString::new(group)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a group name has no NUL"))?;
    // SAFETY: an all-zero `group` is a valid value of a plain C struct, filled by the call.
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: `name` is NUL-terminated; `entry`, `buffer` (with its length) and `found` are valid
    // for writes for the whole call.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("HOTRELOAD_CONTROL_GROUP names `{group}`, which is no group of this system; give a group name or id"),
        ));
    }
    Ok(entry.gr_gid)
}

/// The peer's user and process ids, from the kernel (`SO_PEERCRED`).
#[cfg(target_os = "linux")]
pub(crate) fn peer_credentials(stream: &UnixStream) -> io::Result<Option<Peer>> {
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
pub(crate) fn peer_credentials(_stream: &UnixStream) -> io::Result<Option<Peer>> {
    Ok(None)
}

/// Whether the peer may send requests: this process's user, root, or a user listed in
/// `HOTRELOAD_ALLOWED_UIDS` (comma-separated). Without credentials (not Linux), the socket's
/// mode is the only guard.
#[cfg(target_os = "linux")]
pub(crate) fn peer_allowed(peer: Option<Peer>) -> bool {
    let Some(peer) = peer else { return false };
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    peer.uid == me || peer.uid == 0 || allowed_uids().contains(&peer.uid)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn peer_allowed(_peer: Option<Peer>) -> bool {
    true
}

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
