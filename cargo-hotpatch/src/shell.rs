//! How the tool talks to the person at the terminal: status lines on stderr the way cargo prints
//! them (a right-aligned verb, then the message), warnings, errors the command survives, ids
//! shortened for reading, and stdout that its reader may close.

use std::fmt::Display;
use std::io::{self, IsTerminal, StdoutLock, Write as _};

/// Prints `verb message` in cargo's style (bold green verb on a terminal).
pub fn status(verb: &str, message: impl Display) {
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[1;32m{verb:>12}\x1b[0m {message}");
    } else {
        eprintln!("{verb:>12} {message}");
    }
}

/// Says the app runs from `executable`, and where its control socket is.
pub fn running(executable: &std::path::Path, socket: &std::path::Path) {
    status(
        "Running",
        format!(
            "`{}` (control socket {})",
            executable.display(),
            socket.display()
        ),
    );
}

/// Prints a warning in cargo's style.
pub fn warning(message: impl Display) {
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[1;33mwarning\x1b[0m: {message}");
    } else {
        eprintln!("warning: {message}");
    }
}

/// Prints an error in cargo's style (for errors the command survives).
pub fn error_line(message: impl Display) {
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[1;31merror\x1b[0m: {message}");
    } else {
        eprintln!("error: {message}");
    }
}

/// Stdout was closed by its reader (`cargo hotpatch history | head -1`): not a failure.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct StdoutClosed;

/// Writes to stdout, locked, then flushes; a closed stdout becomes [`StdoutClosed`] (only errors
/// of stdout itself: a broken pipe to a process is a real failure).
pub fn to_stdout(write: impl FnOnce(&mut StdoutLock<'_>) -> io::Result<()>) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(error) => Err(anyhow::Error::from(error).context("writing to stdout")),
    }
}
