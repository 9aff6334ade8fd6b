//! The process's exit code, one per kind of outcome, so a script can tell "this edit needs a
//! restart" from "a target refused" from "the tool broke"; and how a failed command is reported.
//!
//! The codes are listed in the crate's documentation (with the kind each JSON error record names)
//! and in `--help` ([`EXIT_CODES_HELP`](crate::cli::EXIT_CODES_HELP), which a test keeps in step
//! with [`Exit`]); [`Exit`] is the one place they are defined.
//!
//! `run` exits with the app's own code. A closed stdout (`history | head -1`) is not a failure:
//! the command stops quietly with 0, as ripgrep does.

use std::io::Write as _;

use crate::patch::{NotPatchable, Refusal};
use crate::remote::codec::Refused;
use crate::shell::StdoutClosed;

/// A kind of outcome, with its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command did what it was asked.
    Success,
    /// The tool failed.
    Failure,
    /// The command line could not be parsed.
    Usage,
    /// The change cannot be patched: rebuild and restart.
    NeedsRestart,
    /// No source differs from the base build.
    NothingToPatch,
    /// A process refused the patch or the rollback; nothing changed on it.
    TargetRefused,
    /// A rollout failed and every target it patched was rolled back.
    RolledBack,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::NeedsRestart => 3,
            Exit::NothingToPatch => 4,
            Exit::TargetRefused => 5,
            Exit::RolledBack => 6,
        }
    }

    /// The kind's name in JSON records.
    pub fn kind(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Failure => "failure",
            Exit::Usage => "usage",
            Exit::NeedsRestart => "needs-restart",
            Exit::NothingToPatch => "nothing-to-patch",
            Exit::TargetRefused => "target-refused",
            Exit::RolledBack => "rolled-back",
        }
    }

    /// The kind of a command's error: the first typed cause in its chain decides.
    pub fn of(error: &anyhow::Error) -> Exit {
        for cause in error.chain() {
            match cause.downcast_ref::<NotPatchable>() {
                Some(NotPatchable::NeedsRestart(_)) => return Exit::NeedsRestart,
                Some(NotPatchable::NothingChanged) => return Exit::NothingToPatch,
                None => {}
            }
            if cause.is::<Refused>() {
                return Exit::TargetRefused;
            }
        }
        Exit::Failure
    }
}

/// Reports a failed command and returns its exit code: the error and each cause the way cargo
/// prints them on stderr, and with `--message-format json` (`json`) a final record on stdout
/// naming the kind.
pub fn fail(error: &anyhow::Error, json: bool) -> i32 {
    if error.chain().any(|cause| cause.is::<StdoutClosed>()) {
        return Exit::Success.code();
    }
    let exit = Exit::of(error);
    print_error(error);
    if json {
        let record = serde_json::json!({
            "reason": "error",
            "kind": exit.kind(),
            "exit_code": exit.code(),
            "refusal": refusal_of(error).map(Refusal::kind),
            "message": error.to_string(),
            "causes": error.chain().skip(1).map(|c| c.to_string()).collect::<Vec<_>>(),
        });
        // The record is a courtesy: if stdout is gone, the exit code still tells.
        let _ = writeln!(std::io::stdout().lock(), "{record}");
    }
    exit.code()
}

/// Why a change cannot be patched, when that is what `error` says.
fn refusal_of(error: &anyhow::Error) -> Option<&Refusal> {
    error
        .chain()
        .find_map(|cause| match cause.downcast_ref::<NotPatchable>() {
            Some(NotPatchable::NeedsRestart(refusal)) => Some(refusal),
            _ => None,
        })
}

/// Prints an error and its causes the way cargo does.
pub fn print_error(error: &anyhow::Error) {
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("\nCaused by:\n    {cause}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::EXIT_CODES_HELP;
    use anyhow::Context as _;

    #[test]
    fn each_kind_of_error_has_its_code() {
        let nothing = anyhow::Error::from(NotPatchable::NothingChanged).context("building");
        assert_eq!(Exit::of(&nothing), Exit::NothingToPatch);
        assert_eq!(Exit::of(&nothing).code(), 4);
        let refused = Err::<(), _>(Refused {
            peer: "app.sock".into(),
            step: "signature".into(),
            message: "unsigned".into(),
        })
        .context("checking")
        .unwrap_err();
        assert_eq!(Exit::of(&refused).code(), 5);
        assert_eq!(Exit::of(&anyhow::anyhow!("disk full")).code(), 1);
    }

    #[test]
    fn the_help_lists_every_code() {
        let all = [
            Exit::Success,
            Exit::Failure,
            Exit::Usage,
            Exit::NeedsRestart,
            Exit::NothingToPatch,
            Exit::TargetRefused,
            Exit::RolledBack,
        ];
        for (line, exit) in EXIT_CODES_HELP.lines().skip(1).zip(all) {
            assert!(line.starts_with(&format!("  {}  ", exit.code())), "{line}");
        }
    }

    #[test]
    fn a_closed_stdout_is_a_quiet_success() {
        let closed = anyhow::Error::from(StdoutClosed).context("printing the history");
        assert_eq!(fail(&closed, false), 0);
        // A broken pipe to a process is a failure, not a closed stdout.
        let peer_gone = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("sending to app.sock");
        assert_eq!(Exit::of(&peer_gone), Exit::Failure);
    }
}
