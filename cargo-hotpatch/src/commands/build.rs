//! `cargo hotpatch build`: write a patch of the current sources against a base build.

use anyhow::Context as _;

use hotreload_runtime::wire::patch_file::short_id;

use crate::cli::{BuildArgs, MessageFormat};
use crate::host::BaseRecord;
use crate::host::HostFacts;
use crate::host::{self, HotpatchDirs};
use crate::human;
use crate::patch::signing;
use crate::patch::{self, BuiltPatch};
use crate::report::print_patch_built;
use crate::shell::{status, to_stdout};

/// Builds (and signs) the patch, then says what it holds and what applying it will migrate.
pub fn build(args: BuildArgs) -> anyhow::Result<()> {
    let layout = HotpatchDirs::of(&args.selection)?;
    let base_dir = host::base_dir_or_default(args.base.as_deref(), &layout);
    let mut base = BaseRecord::load(&base_dir)?;
    base.relocate(&base_dir, &layout.workspace_root);
    let output = args
        .output
        .unwrap_or_else(|| layout.dir.join("patch.hotpatch"));
    status(
        "Patching",
        format!("against base build {}", short_id(&base.identity.build_id)),
    );
    let mut built = patch::build(&base, &layout.work_dir(), &output)?;
    if let Some(key) = &args.sign {
        sign(&mut built, key)?;
    }
    let manifest = &built.file.manifest;
    status(
        "Built",
        format!(
            "patch {} of {} ({} hot functions, {} bytes) in {}",
            built.file.short_id(),
            manifest.crates.join(", "),
            manifest.hot_functions.len(),
            built.file.library.len(),
            built.path.display()
        ),
    );
    if !manifest.entry_redirects.is_empty() {
        status(
            "Redirects",
            format!(
                "the entries of {} function(s) that are not #[hot]: every thread of a process \
                 stops for a moment while they are written (`apply --allow-entry-redirects`)",
                manifest.entry_redirects.len()
            ),
        );
    }
    report_migrations(&base, &built);
    status(
        "Timing",
        format!(
            "rustc {}, checks {}, link {}",
            human::duration(built.rustc),
            human::duration(built.analysis),
            human::duration(built.link)
        ),
    );
    if args.selection.message_format == MessageFormat::Json {
        to_stdout(|out| print_patch_built(out, &built))?;
    }
    Ok(())
}

/// Signs the written patch with `key` and writes it again.
fn sign(built: &mut BuiltPatch, key: &std::path::Path) -> anyhow::Result<()> {
    signing::sign(&mut built.file, key)?;
    std::fs::write(&built.path, built.file.to_bytes())
        .with_context(|| format!("writing {}", built.path.display()))?;
    let signer = built
        .file
        .signature
        .as_ref()
        .map(|s| hotreload_runtime::wire::patch_file::hex(&s.public_key));
    status("Signed", format!("with key {}", signer.unwrap_or_default()));
    Ok(())
}

/// Each state type whose version the patch changes. Against the base: a patch is cumulative, so
/// this is what it does to a process of the base.
fn report_migrations(base: &BaseRecord, built: &BuiltPatch) {
    let base_states = HostFacts::of(base)
        .map(|facts| facts.states)
        .unwrap_or_default();
    for state in &built.file.manifest.states {
        if let Some(before) = base_states
            .iter()
            .find(|b| b.name == state.name && b.version != state.version)
        {
            status(
                "Migrates",
                format!(
                    "{} v{} -> v{}: every live value, when the patch is applied",
                    state.name, before.version, state.version
                ),
            );
        }
    }
}
