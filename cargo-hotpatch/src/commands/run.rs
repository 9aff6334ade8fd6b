//! `cargo hotpatch run`: build the host, record the base, run the app.

use anyhow::Context as _;

use hotreload_runtime::wire::patch_file::short_id;

use crate::cli::RunArgs;
use crate::host::{self, HotpatchDirs};
use crate::patch;
use crate::remote::app_link::{app_command, AppLink};
use crate::shell::status;

/// Builds, records and runs the app; returns its exit code.
pub fn run(args: RunArgs) -> anyhow::Result<i32> {
    let layout = HotpatchDirs::of(&args.selection)?;
    let (record, executable) = host::build(&args.selection, &layout)?;
    patch::forget_introduced_statics(&record, &layout.work_dir())?;
    status(
        "Recorded",
        format!(
            "base build {} ({} crates) in {}",
            short_id(&record.identity.build_id),
            record.crates.len(),
            layout.base_dir().display()
        ),
    );
    if let Some(dir) = &args.record {
        let copied = record.write_portable(dir)?;
        status(
            "Recorded",
            format!(
                "a self-contained base record in {} ({copied} dependency files)",
                dir.display()
            ),
        );
    }
    let socket = layout.control_socket();
    crate::shell::running(&executable, &socket);
    let link = AppLink::listen(&layout.dir)?;
    link.expect_build(&record.identity.build_id);
    let exit = app_command(&executable, &args.app_args, &socket, &link)
        .status()
        .with_context(|| format!("running {}", executable.display()))?;
    Ok(exit.code().unwrap_or(101))
}
