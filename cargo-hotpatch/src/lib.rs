//! `cargo hotpatch`: build, apply and roll back live patches of running Rust programs.
//!
//! The binary is a thin `main` over [`main`]; each subcommand lives in its own module.
//!
//! # Exit codes
//! | code | meaning |
//! | --- | --- |
//! | 0 | success |
//! | 1 | the command failed (the error and its causes are printed) |
//! | 2 | the command line could not be parsed |

mod cli;

use clap::Parser;

pub use cli::{Cargo, Command};

/// Exit code of a failed command.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code of a command line that could not be parsed.
pub const EXIT_USAGE: i32 = 2;

/// Parses the command line, runs the command and returns the process's exit code.
pub fn main() -> i32 {
    let Cargo::Hotpatch(args) = match Cargo::try_parse() {
        Ok(parsed) => parsed,
        Err(error) => {
            let code = if error.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = error.print();
            return code;
        }
    };
    match run(args.command) {
        Ok(()) => 0,
        Err(error) => {
            report(&error);
            EXIT_FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    let name = match command {
        Command::Run(_) => "run",
        Command::Watch(_) => "watch",
        Command::Build(_) => "build",
        Command::Check(_) => "check",
        Command::Apply(_) => "apply",
        Command::Status(_) => "status",
        Command::Rollback(_) => "rollback",
    };
    anyhow::bail!("`cargo hotpatch {name}` is not available in this version yet")
}

/// Prints an error and its causes the way cargo does.
fn report(error: &anyhow::Error) {
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("\nCaused by:\n    {cause}");
    }
}
