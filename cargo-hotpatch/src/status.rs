//! Status lines on stderr, the way cargo prints them: a right-aligned verb, then the message.

use std::fmt::Display;
use std::io::IsTerminal;

/// Prints `verb message` in cargo's style (bold green verb on a terminal).
pub fn status(verb: &str, message: impl Display) {
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[1;32m{verb:>12}\x1b[0m {message}");
    } else {
        eprintln!("{verb:>12} {message}");
    }
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
