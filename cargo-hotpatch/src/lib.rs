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

mod app_link;
mod cli;
mod client;
mod commands;
mod host;
mod object;
mod patch;
mod rollout;
mod status;
mod watch;

use clap::Parser;

use host::capture;

pub use cli::{Cargo, Command};
/// What the host build adds to cargo's command line (the benchmarks build the same way).
pub use host::config_args as host_config_args;

/// Exit code of a failed command.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code of a command line that could not be parsed.
pub const EXIT_USAGE: i32 = 2;

/// Parses the command line, runs the command and returns the process's exit code.
pub fn main() -> i32 {
    // Run by cargo as the rustc wrapper while building a patchable host.
    if let Some(dir) = std::env::var_os(capture::CAPTURE_DIR_ENV) {
        let argv: Vec<String> = std::env::args().skip(1).collect();
        return match capture::run_as_wrapper(std::path::Path::new(&dir), argv) {
            Ok(code) => code,
            Err(error) => {
                report(&error);
                EXIT_FAILURE
            }
        };
    }
    let Cargo::Hotpatch(args) = match Cargo::try_parse() {
        Ok(parsed) => parsed,
        Err(error) => {
            let code = if error.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = error.print();
            return code;
        }
    };
    match run(args.command) {
        Ok(code) => code,
        Err(error) => {
            report(&error);
            EXIT_FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Run(args) => return commands::run(args),
        Command::Watch(args) => return watch::watch(args),
        Command::Build(args) => commands::build(args)?,
        Command::Check(args) => commands::check(args)?,
        Command::Apply(args) => return rollout::apply(args),
        Command::Status(args) => commands::status_command(args)?,
        Command::Rollback(args) => commands::rollback(args)?,
        Command::History(args) => commands::history(args)?,
        Command::Keygen(args) => patch::signing::keygen(&args.output)?,
    }
    Ok(0)
}

/// Prints an error and its causes the way cargo does.
fn report(error: &anyhow::Error) {
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("\nCaused by:\n    {cause}");
    }
}
