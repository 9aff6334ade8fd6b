//! What the commands print about processes and patches, for people and as JSON: patch reports,
//! status, history, the rollout summary and a built patch.
//!
//! Tables go to the writer given (stdout, locked), so a closed pipe is an error the caller sees
//! instead of a panic; status lines go to stderr through [`crate::shell`].

use std::io::{self, Write};
use std::path::Path;

use hotreload_runtime::wire::protocol::{EntryReport, PatchReport, StatusReport, ThreadInPatch};

use hotreload_runtime::wire::patch_file::short_id;

use crate::cli::MessageFormat;
use crate::human;
use crate::patch::BuiltPatch;
use crate::shell::status;

/// A process's answer to a check, apply or rollback: a status line with the verb, then each
/// function and state type it changed (or would change).
pub fn print_patch_report(
    out: &mut impl Write,
    target: &Path,
    report: &PatchReport,
    format: MessageFormat,
    verb: &str,
) -> io::Result<()> {
    if format == MessageFormat::Json {
        return writeln!(out, "{}", serde_json::to_string(report).unwrap_or_default());
    }
    if report.already_applied {
        status(
            "Fresh",
            format!(
                "patch {} is already applied to {}",
                short_id(&report.patch_id),
                target.display()
            ),
        );
        return Ok(());
    }
    status(
        verb,
        format!(
            "patch {} to {}: {} function(s){} (verify {}, load {}, commit {})",
            short_id(&report.patch_id),
            target.display(),
            report.changes.len(),
            match report.states.len() {
                0 => String::new(),
                n => format!(", {n} state type(s)"),
            },
            human::micros(report.verify_us),
            human::micros(report.load_us),
            human::micros(report.commit_us)
        ),
    );
    for change in &report.changes {
        writeln!(out, "  {} v{} -> v{}", change.key, change.from, change.to)?;
    }
    for state in &report.states {
        let values = if report.dry_run {
            "to migrate"
        } else {
            "migrated"
        };
        writeln!(
            out,
            "  state {} v{} -> v{} ({} value(s) {values})",
            state.name, state.from, state.to, state.values
        )?;
    }
    if let Some(entries) = &report.entries {
        writeln!(out, "  {}", describe_entries(entries, report.dry_run))?;
    }
    if !report.still_running.is_empty() {
        crate::shell::warning(format!(
            "{} thread(s) of {} still run the code this removed; later calls run the restored code, but these threads stay where they are:",
            report.still_running.len(),
            target.display()
        ));
        for thread in &report.still_running {
            writeln!(out, "  still running: {}", describe_thread(thread))?;
        }
    }
    Ok(())
}

/// `entry redirects: 3 function(s) (2 written, 1 retargeted, 0 restored), pause 85 µs with 6
/// thread(s), 1 checked asleep without stopping`; for a check, the pause expected.
fn describe_entries(entries: &EntryReport, dry_run: bool) -> String {
    let threads = match entries.foreign_threads {
        0 => format!("{} thread(s)", entries.threads),
        foreign => format!(
            "{} thread(s), {foreign} checked asleep without stopping",
            entries.threads
        ),
    };
    let pause = match (dry_run, entries.pause_us, entries.expected_pause_us) {
        (true, _, Some(us)) => format!(", expected pause {us} µs with {threads}"),
        (false, Some(us), _) => format!(", pause {us} µs with {threads}"),
        _ => ", no pause".to_owned(),
    };
    format!(
        "entry redirects: {} function(s) ({} written, {} retargeted, {} restored){pause}",
        entries.redirected, entries.written, entries.retargeted, entries.restored
    )
}

/// `'tokio-runtime-w' (tid 123) in gateway::handle of patch 0123456789ab`.
fn describe_thread(thread: &ThreadInPatch) -> String {
    format!(
        "'{}' (tid {}) in {} of patch {}{}",
        thread.name,
        thread.tid,
        thread.function.as_deref().unwrap_or("unnamed code"),
        short_id(&thread.patch),
        match thread.for_ms {
            0 => String::new(),
            ms => format!(", for {}", human::millis(ms)),
        }
    )
}

/// A process's hot functions, patches, state types and history.
pub fn print_status(
    out: &mut impl Write,
    target: &Path,
    report: &StatusReport,
    format: MessageFormat,
) -> io::Result<()> {
    if format == MessageFormat::Json {
        return writeln!(out, "{}", json(report)?);
    }
    writeln!(
        out,
        "process {} (pid {}, build {})",
        target.display(),
        report.pid,
        short_id(&report.build_id)
    )?;
    writeln!(out, "hot functions:")?;
    for function in &report.functions {
        let patch = function.patch.as_deref().map(short_id).unwrap_or("base");
        writeln!(
            out,
            "  {:<60} v{:<3} {}",
            function.key, function.version, patch
        )?;
    }
    writeln!(out, "patches:")?;
    for patch in &report.patches {
        let state = if patch.active {
            "active"
        } else {
            "rolled back"
        };
        let crates = patch.crates.join(", ");
        writeln!(out, "  {} {crates} [{state}]", short_id(&patch.id))?;
    }
    if !report.states.is_empty() {
        writeln!(out, "state:")?;
        for state in &report.states {
            writeln!(
                out,
                "  {:<60} v{:<3} {} value(s)",
                state.name, state.version, state.values
            )?;
        }
    }
    for thread in &report.long_running {
        writeln!(
            out,
            "long-running in patched code: {}",
            describe_thread(thread)
        )?;
    }
    for quarantined in &report.quarantined {
        writeln!(
            out,
            "QUARANTINED at start: patch {} ({}): {}",
            short_id(&quarantined.id),
            quarantined.path,
            quarantined.reason
        )?;
    }
    writeln!(out, "history:")?;
    print_history_items(out, report, false)?;
    writeln!(out, "patch code kept mapped: {} bytes", report.mapped_bytes)
}

/// Every commit and rollback of a process, with each function's version change.
pub fn print_history(
    out: &mut impl Write,
    target: &Path,
    report: &StatusReport,
    format: MessageFormat,
) -> io::Result<()> {
    if format == MessageFormat::Json {
        return writeln!(out, "{}", json(&report.history)?);
    }
    writeln!(out, "history of {} (pid {})", target.display(), report.pid)?;
    print_history_items(out, report, true)
}

/// Each commit and rollback, with each function's version change when `detailed`.
fn print_history_items(
    out: &mut impl Write,
    report: &StatusReport,
    detailed: bool,
) -> io::Result<()> {
    if report.history_dropped > 0 {
        writeln!(
            out,
            "  ({} earlier commit(s) and rollback(s) not listed)",
            report.history_dropped
        )?;
    }
    for item in &report.history {
        writeln!(
            out,
            "  #{:<4} {:<11} patch {} at {} ({} functions{})",
            item.update_id,
            item.action,
            short_id(&item.label),
            human::date(item.at_unix),
            item.changes.len(),
            match item.states.len() {
                0 => String::new(),
                n => format!(", {n} state type(s) migrated"),
            }
        )?;
        if !detailed {
            continue;
        }
        for change in &item.changes {
            writeln!(
                out,
                "        {} v{} -> v{}",
                change.key, change.from, change.to
            )?;
        }
        for state in &item.states {
            writeln!(
                out,
                "        state {} v{} -> v{}: {} value(s)",
                state.name, state.from, state.to, state.values
            )?;
        }
    }
    Ok(())
}

/// The end of a rollout: each target and what happened to it. In JSON it is one record on
/// stderr (stdout carries one report per applied target), naming the exit's kind.
pub fn print_rollout_summary<'a>(
    out: &mut impl Write,
    rows: impl Iterator<Item = (&'a Path, String)>,
    format: MessageFormat,
    exit: crate::exit::Exit,
) -> io::Result<()> {
    let rows: Vec<(&Path, String)> = rows.collect();
    if format == MessageFormat::Json {
        let targets: Vec<_> = rows
            .iter()
            .map(|(t, result)| serde_json::json!({ "target": t, "result": result }))
            .collect();
        eprintln!(
            "{}",
            serde_json::json!({
                "reason": "rollout-summary",
                "targets": targets,
                "kind": exit.kind(),
                "exit_code": exit.code(),
            })
        );
        return Ok(());
    }
    let width = rows
        .iter()
        .map(|(t, _)| t.display().to_string().len())
        .max()
        .unwrap_or(6)
        .max(6);
    writeln!(out, "{:<width$}  result", "target")?;
    for (target, result) in &rows {
        writeln!(out, "{:<width$}  {result}", target.display().to_string())?;
    }
    Ok(())
}

/// The record `build --message-format json` prints for the patch it wrote.
pub fn print_patch_built(out: &mut impl Write, built: &BuiltPatch) -> io::Result<()> {
    let record = serde_json::json!({
        "reason": "patch-built",
        "path": built.path,
        "id": built.file.id,
        "manifest": built.file.manifest,
        "rustc_ms": built.rustc.as_secs_f64() * 1e3,
        "link_ms": built.link.as_secs_f64() * 1e3,
        "analysis_ms": built.analysis.as_secs_f64() * 1e3,
    });
    writeln!(out, "{record}")
}

fn json(value: &impl serde::Serialize) -> io::Result<String> {
    serde_json::to_string(value).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_redirects_count_the_threads_checked_asleep_without_stopping() {
        let mut entries = EntryReport {
            redirected: 3,
            written: 2,
            retargeted: 1,
            threads: 6,
            pause_us: Some(85),
            ..EntryReport::default()
        };
        assert_eq!(
            describe_entries(&entries, false),
            "entry redirects: 3 function(s) (2 written, 1 retargeted, 0 restored), pause 85 µs with 6 thread(s)"
        );
        entries.foreign_threads = 1;
        assert!(describe_entries(&entries, false)
            .ends_with("pause 85 µs with 6 thread(s), 1 checked asleep without stopping"));
        entries.expected_pause_us = Some(120);
        assert!(describe_entries(&entries, true).ends_with(
            "expected pause 120 µs with 6 thread(s), 1 checked asleep without stopping"
        ));
    }
}
