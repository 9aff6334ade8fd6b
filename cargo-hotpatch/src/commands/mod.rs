//! The subcommands, one file each (or per group): thin handlers that parse nothing, call the
//! pipeline, [`crate::remote`] or [`crate::watch`], and print through [`crate::report`].

mod agent;
mod apply;
mod build;
mod check;
mod publish;
mod run;
mod targets;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cli::Command;
use crate::exit::Exit;
use crate::patch::signing;
use crate::watch;

/// Runs a parsed command; returns the process's exit code (`run` returns the app's).
pub fn dispatch(command: Command, verbose: bool) -> anyhow::Result<i32> {
    match command {
        Command::Run(args) => return run::run(args),
        Command::Watch(args) => return watch::watch(args, verbose),
        Command::Build(args) => build::build(args)?,
        Command::Check(args) => check::check(args)?,
        Command::Apply(args) => return apply::apply(args).map(Exit::code),
        Command::Status(args) => targets::status(args)?,
        Command::Rollback(args) => targets::rollback(args)?,
        Command::History(args) => targets::history(args)?,
        Command::Keygen(args) => signing::keygen(&args.output)?,
        Command::Agent(args) => agent::agent(args)?,
        Command::Publish(args) => return publish::publish(args).map(Exit::code),
    }
    Ok(Exit::Success.code())
}

/// A path as the target process will read it, whatever its working directory.
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}
