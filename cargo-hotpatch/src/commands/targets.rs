//! `cargo hotpatch status`, `history` and `rollback`: asking running processes what they run, and
//! undoing their last patch. Without `--target`, they ask this workspace's own app: the one `run`
//! or `watch` started, found by the control socket they give it under `target/hotpatch/`.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use crate::cli::{BuildSelection, MessageFormat, ProjectTargetArgs};
use crate::host::HotpatchDirs;
use crate::remote::client;
use crate::report::{print_history, print_patch_report, print_status};
use crate::shell::to_stdout;

/// `cargo hotpatch status`.
pub fn status(args: ProjectTargetArgs) -> anyhow::Result<()> {
    for target in &targets(&args)? {
        let report = client::status(target)?;
        to_stdout(|out| print_status(out, target, &report, args.message_format))?;
    }
    Ok(())
}

/// `cargo hotpatch history`.
pub fn history(args: ProjectTargetArgs) -> anyhow::Result<()> {
    for target in &targets(&args)? {
        let report = client::status(target)?;
        to_stdout(|out| print_history(out, target, &report, args.message_format))?;
    }
    Ok(())
}

/// `cargo hotpatch rollback`: every target is rolled back even if stdout was closed on the way.
pub fn rollback(args: ProjectTargetArgs) -> anyhow::Result<()> {
    let mut printed = Ok(());
    for target in &targets(&args)? {
        let report = client::rollback(target)?;
        if printed.is_ok() {
            printed = to_stdout(|out| {
                print_patch_report(out, target, &report, args.message_format, "Rolled back")
            });
        }
    }
    printed
}

/// The sockets given, or the control socket of this workspace's app: of `--release` if given,
/// else of whichever profile's app answers (dev first).
fn targets(args: &ProjectTargetArgs) -> anyhow::Result<Vec<PathBuf>> {
    if !args.target.is_empty() {
        return Ok(args.target.clone());
    }
    let profiles: &[bool] = if args.release {
        &[true]
    } else {
        &[false, true]
    };
    let mut tried = Vec::new();
    for &release in profiles {
        let selection = BuildSelection {
            manifest_path: args.manifest_path.clone(),
            package: None,
            bin: None,
            release,
            message_format: MessageFormat::Human,
        };
        let socket = HotpatchDirs::of(&selection)?.control_socket();
        if UnixStream::connect(&socket).is_ok() {
            return Ok(vec![socket]);
        }
        tried.push(socket.display().to_string());
    }
    anyhow::bail!(
        "no app of this workspace is running (nothing answers on {}); start it with `cargo hotpatch watch` or `run`, or name a process with --target SOCKET",
        tried.join(" or ")
    )
}
