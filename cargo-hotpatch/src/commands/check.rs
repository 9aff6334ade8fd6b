//! `cargo hotpatch check`: every step of applying short of changing anything, on every target.

use crate::cli::TargetFileArgs;
use crate::remote::client;
use crate::report::print_patch_report;
use crate::shell::to_stdout;

/// Checks the patch against each target in turn; the first refusal ends it.
pub fn check(args: TargetFileArgs) -> anyhow::Result<()> {
    let path = super::absolute(&args.file)?;
    let format = args.targets.message_format;
    for target in &args.targets.target {
        let report = client::check(target, &path)?;
        to_stdout(|out| print_patch_report(out, target, &report, format, "Checked"))?;
    }
    Ok(())
}
