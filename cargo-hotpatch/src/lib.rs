//! `cargo hotpatch`: build, apply and roll back live patches of running Rust programs.
//!
//! The binary is a thin `main` over [`main`]. The user-facing side: `cli` parses, `commands`
//! holds one handler per subcommand, `watch` runs the edit loop, `remote` talks to running
//! processes, `fleet` is the agent and publisher over etcd, `report` and `shell` print, `exit`
//! maps outcomes to exit codes. The patch pipeline (host, patch and their stages) sits below them.
//!
//! # Exit codes
//! | code | kind | meaning |
//! | --- | --- | --- |
//! | 0 | `success` | the command did what it was asked (also when stdout was closed by its reader, as in `history \| head -1`) |
//! | 1 | `failure` | the tool failed (the error and its causes are printed) |
//! | 2 | `usage` | the command line could not be parsed |
//! | 3 | `needs-restart` | the change cannot be patched: rebuild and restart the app |
//! | 4 | `nothing-to-patch` | no source differs from the base build |
//! | 5 | `target-refused` | a process refused the patch (`check`, `apply`) or the rollback: nothing changed on it |
//! | 6 | `rolled-back` | a rollout failed and every target it patched was rolled back |
//!
//! `run` exits with the app's own code. With `--message-format json`, a failed command ends with
//! a record `{"reason":"error","kind":"needs-restart","exit_code":3,"refusal":"layout-changed",...}`
//! on stdout; `refusal` names why a change cannot be patched (the kinds of `patch::Refusal`:
//! `unpatchable-crate-changed`, `main-changed`, `signature-changed`, `merged-function-changed`, `no-symbol-table`, `hot-signature-changed`,
//! `entry-attribute-changed`, `private-static-would-fork`, `introduced-static-would-fork`,
//! `layout-changed`, `state-version-kept`, `held-type-changed`) and is `null` otherwise.

mod batches;
mod cli;
mod commands;
mod exit;
mod fleet;
mod host;
mod human;
mod object;
mod patch;
pub mod remote;
mod report;
mod shell;
mod watch;

use clap::Parser;

use host::capture;

pub use cli::{Cargo, Command};
pub use exit::Exit;
/// What the host build adds to cargo's command line (the benchmarks build the same way).
pub use host::config_args as host_config_args;

/// Parses the command line, runs the command and returns the process's exit code.
pub fn main() -> i32 {
    // Run by cargo as the rustc wrapper while building a patchable host.
    if let Some(dir) = std::env::var_os(capture::CAPTURE_DIR_ENV) {
        let argv: Vec<String> = std::env::args().skip(1).collect();
        return match capture::run_as_wrapper(std::path::Path::new(&dir), argv) {
            Ok(code) => code,
            Err(error) => exit::fail(&error, false),
        };
    }
    let Cargo::Hotpatch(args) = match Cargo::try_parse() {
        Ok(parsed) => parsed,
        Err(error) => {
            let exit = if error.use_stderr() {
                Exit::Usage
            } else {
                Exit::Success
            };
            let _ = error.print();
            return exit.code();
        }
    };
    let json = args.command.message_format() == cli::MessageFormat::Json;
    match commands::dispatch(args.command, args.verbose) {
        Ok(code) => code,
        Err(error) => exit::fail(&error, json),
    }
}
