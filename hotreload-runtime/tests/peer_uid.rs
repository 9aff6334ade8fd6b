//! The control socket answers only its own user (or root, or an allowed uid): a client running
//! as another user is refused even if the socket file's mode would let it connect.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// `nobody` on Debian.
const OTHER_UID: u32 = 65534;

#[test]
fn a_client_running_as_another_user_is_refused() {
    // SAFETY: `geteuid` has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: running a client as another user needs root (CI runs as root)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("hotreload-peer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.join("control.sock");
    hotreload_runtime::control::serve(&socket).unwrap();
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The same user is answered.
    let stream = UnixStream::connect(&socket).unwrap();
    (&stream).write_all(b"{\"command\":\"hello\"}\n").unwrap();
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).unwrap();
    assert!(answer.contains("hello"), "{answer}");
    drop(stream);

    // Open the file's mode so only the credential check stands in the way.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let client = format!(
        "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({:?})\ntry:\n    s.sendall(b'{{\"command\":\"hello\"}}\\n')\n    answer = s.recv(4096).decode()\nexcept (ConnectionResetError, BrokenPipeError):\n    answer = ''\nprint('ANSWER:' + answer)",
        socket.display().to_string()
    );
    let output = Command::new("python3")
        .arg("-c")
        .arg(&client)
        .uid(OTHER_UID)
        .gid(OTHER_UID)
        .output()
        .expect("python3 runs the other user's client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the client connected: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.trim(),
        "ANSWER:",
        "the process must close the connection of another user without answering"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
