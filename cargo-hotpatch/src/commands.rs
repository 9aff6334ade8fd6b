//! The subcommands.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hotreload_runtime::control::protocol::{PatchReport, Reply, Request, StatusReport};

use crate::app_link::AppLink;
use crate::cli::{BuildArgs, MessageFormat, RunArgs, TargetArgs, TargetFileArgs};
use crate::client;
use crate::host::{self, BaseRecord, HostFacts, HotpatchDirs};
use crate::patch;
use crate::patch::signing;
use crate::status::status;

/// `cargo hotpatch run`: build the host, record the base, run the app; returns its exit code.
pub fn run(args: RunArgs) -> anyhow::Result<i32> {
    let layout = HotpatchDirs::of(&args.selection)?;
    let (record, executable) = host::build(&args.selection, &layout)?;
    status(
        "Recorded",
        format!(
            "base build {} ({} crates) in {}",
            short(&record.identity.build_id),
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
    status(
        "Running",
        format!(
            "`{}` (control socket {})",
            executable.display(),
            socket.display()
        ),
    );
    let link = AppLink::listen(&layout.dir)?;
    link.expect_build(&record.identity.build_id);
    let exit = crate::app_link::app_command(&executable, &args.app_args, &socket, &link)
        .status()
        .with_context(|| format!("running {}", executable.display()))?;
    Ok(exit.code().unwrap_or(101))
}

/// `cargo hotpatch build`: write a patch of the current sources against a base build.
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
        format!("against base build {}", short(&base.identity.build_id)),
    );
    let mut built = patch::build(&base, &layout.work_dir(), &output)?;
    if let Some(key) = &args.sign {
        signing::sign(&mut built.file, key)?;
        std::fs::write(&built.path, built.file.to_bytes())
            .with_context(|| format!("writing {}", built.path.display()))?;
        let signer = built
            .file
            .signature
            .as_ref()
            .map(|s| hotreload_runtime::patch_file::hex(&s.public_key));
        status("Signed", format!("with key {}", signer.unwrap_or_default()));
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
    // Against the base: a patch is cumulative, so this is what it does to a process of the base.
    let base_states = HostFacts::of(&base)
        .map(|facts| facts.states)
        .unwrap_or_default();
    for state in &manifest.states {
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
    status(
        "Timing",
        format!(
            "rustc {:.0?}, checks {:.0?}, link {:.0?}",
            built.rustc, built.analysis, built.link
        ),
    );
    if args.selection.message_format == MessageFormat::Json {
        println!(
            "{}",
            serde_json::json!({
                "reason": "patch-built",
                "path": built.path,
                "id": built.file.id,
                "manifest": manifest,
                "rustc_ms": built.rustc.as_secs_f64() * 1e3,
                "link_ms": built.link.as_secs_f64() * 1e3,
                "analysis_ms": built.analysis.as_secs_f64() * 1e3,
            })
        );
    }
    Ok(())
}

/// `cargo hotpatch check`: every step of applying short of changing anything, on every target.
pub fn check(args: TargetFileArgs) -> anyhow::Result<()> {
    let path = absolute(&args.file)?;
    for target in &args.targets.target {
        let reply = client::request(target, &Request::Check { path: path.clone() })?;
        let Reply::Patch(report) = reply else {
            anyhow::bail!("{} answered with an unexpected reply", target.display());
        };
        print_patch_report(target, &report, args.targets.message_format, "Checked");
    }
    Ok(())
}

/// `cargo hotpatch rollback`.
pub fn rollback(args: TargetArgs) -> anyhow::Result<()> {
    for target in &args.target {
        let Reply::RolledBack(report) = client::request(target, &Request::Rollback)? else {
            anyhow::bail!("{} answered with an unexpected reply", target.display());
        };
        print_patch_report(target, &report, args.message_format, "Rolled back");
    }
    Ok(())
}

/// `cargo hotpatch history`.
pub fn history(args: TargetArgs) -> anyhow::Result<()> {
    for target in &args.target {
        let report = status_of(target)?;
        if args.message_format == MessageFormat::Json {
            println!("{}", serde_json::to_string(&report.history)?);
            continue;
        }
        println!("history of {} (pid {})", target.display(), report.pid);
        print_history(&report, true);
    }
    Ok(())
}

/// `cargo hotpatch status`.
pub fn status_command(args: TargetArgs) -> anyhow::Result<()> {
    for target in &args.target {
        let report = status_of(target)?;
        match args.message_format {
            MessageFormat::Json => println!("{}", serde_json::to_string(&report)?),
            MessageFormat::Human => print_status(target, &report),
        }
    }
    Ok(())
}

pub(crate) fn print_patch_report(
    target: &Path,
    report: &PatchReport,
    format: MessageFormat,
    verb: &str,
) {
    if format == MessageFormat::Json {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
        return;
    }
    if report.already_applied {
        status(
            "Fresh",
            format!(
                "patch {} is already applied to {}",
                short(&report.patch_id),
                target.display()
            ),
        );
        return;
    }
    status(
        verb,
        format!(
            "patch {} to {}: {} function(s){} (verify {} µs, load {} µs, commit {} µs)",
            short(&report.patch_id),
            target.display(),
            report.changes.len(),
            match report.states.len() {
                0 => String::new(),
                n => format!(", {n} state type(s)"),
            },
            report.verify_us,
            report.load_us,
            report.commit_us
        ),
    );
    for change in &report.changes {
        println!("  {} v{} -> v{}", change.key, change.from, change.to);
    }
    for state in &report.states {
        let values = if report.dry_run {
            "to migrate"
        } else {
            "migrated"
        };
        println!(
            "  state {} v{} -> v{} ({} value(s) {values})",
            state.name, state.from, state.to, state.values
        );
    }
}

fn print_status(target: &Path, report: &StatusReport) {
    println!(
        "process {} (pid {}, build {})",
        target.display(),
        report.pid,
        short(&report.build_id)
    );
    println!("hot functions:");
    for function in &report.functions {
        let patch = function.patch.as_deref().map(short).unwrap_or("base");
        println!("  {:<60} v{:<3} {}", function.key, function.version, patch);
    }
    println!("patches:");
    for patch in &report.patches {
        println!(
            "  {} {} [{}]",
            short(&patch.id),
            patch.crates.join(", "),
            if patch.active {
                "active"
            } else {
                "rolled back"
            }
        );
    }
    if !report.states.is_empty() {
        println!("state:");
        for state in &report.states {
            println!(
                "  {:<60} v{:<3} {} value(s)",
                state.name, state.version, state.values
            );
        }
    }
    println!("history:");
    print_history(report, false);
    println!("patch code kept mapped: {} bytes", report.mapped_bytes);
}

/// Each commit and rollback, with each function's version change when `detailed`.
fn print_history(report: &StatusReport, detailed: bool) {
    for item in &report.history {
        println!(
            "  #{:<4} {:<11} patch {} at {} ({} functions{})",
            item.update_id,
            item.action,
            short(&item.label),
            item.at_unix,
            item.changes.len(),
            match item.states.len() {
                0 => String::new(),
                n => format!(", {n} state type(s) migrated"),
            }
        );
        if detailed {
            for change in &item.changes {
                println!("        {} v{} -> v{}", change.key, change.from, change.to);
            }
            for state in &item.states {
                println!(
                    "        state {} v{} -> v{}: {} value(s)",
                    state.name, state.from, state.to, state.values
                );
            }
        }
    }
}

/// A target's status report.
fn status_of(target: &Path) -> anyhow::Result<StatusReport> {
    match client::request(target, &Request::Status)? {
        Reply::Status(report) => Ok(report),
        _ => anyhow::bail!("{} answered with an unexpected reply", target.display()),
    }
}

/// The first 12 hex digits of an id, as shown to people.
pub(crate) fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

pub(crate) fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}
