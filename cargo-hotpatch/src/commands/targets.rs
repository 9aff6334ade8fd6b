//! `cargo hotpatch status`, `history` and `rollback`: asking running processes what they run, and
//! undoing their last patch.

use crate::cli::TargetArgs;
use crate::remote::client;
use crate::report::{print_history, print_patch_report, print_status};
use crate::shell::to_stdout;

/// `cargo hotpatch status`.
pub fn status(args: TargetArgs) -> anyhow::Result<()> {
    for target in &args.target {
        let report = client::status(target)?;
        to_stdout(|out| print_status(out, target, &report, args.message_format))?;
    }
    Ok(())
}

/// `cargo hotpatch history`.
pub fn history(args: TargetArgs) -> anyhow::Result<()> {
    for target in &args.target {
        let report = client::status(target)?;
        to_stdout(|out| print_history(out, target, &report, args.message_format))?;
    }
    Ok(())
}

/// `cargo hotpatch rollback`: every target is rolled back even if stdout was closed on the way.
pub fn rollback(args: TargetArgs) -> anyhow::Result<()> {
    let mut printed = Ok(());
    for target in &args.target {
        let report = client::rollback(target)?;
        if printed.is_ok() {
            printed = to_stdout(|out| {
                print_patch_report(out, target, &report, args.message_format, "Rolled back")
            });
        }
    }
    printed
}
