//! `cargo hotpatch apply`: a patch rolled out over many processes. Every target is checked first
//! (nothing is applied if one would refuse); then batches are applied in turn, each followed by the
//! health command and a pause. A failed apply or health check rolls back every target this rollout
//! patched, and stops. A summary table ends it.

use std::fmt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};
use hotreload_runtime::control::protocol::{Reply, Request};

use crate::cli::{ApplyArgs, MessageFormat};
use crate::client;
use crate::commands::{absolute, print_patch_report};
use crate::status::{error_line, status};
use crate::EXIT_FAILURE;

/// What happened to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Untouched,
    Refused(String),
    Applied,
    AlreadyApplied,
    RolledBack,
    RollbackFailed(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Untouched => write!(f, "untouched"),
            Outcome::Refused(why) => write!(f, "refused: {why}"),
            Outcome::Applied => write!(f, "applied"),
            Outcome::AlreadyApplied => write!(f, "already applied"),
            Outcome::RolledBack => write!(f, "rolled back"),
            Outcome::RollbackFailed(why) => write!(f, "ROLLBACK FAILED: {why}"),
        }
    }
}

/// Runs the rollout; returns the exit code.
pub fn apply(args: ApplyArgs) -> anyhow::Result<i32> {
    let path = absolute(&args.patch.file)?;
    let targets = &args.patch.targets.target;
    let format = args.patch.targets.message_format;
    let cumulative = batch_sizes(&args.batches, targets.len())?;
    let mut outcomes: Vec<Outcome> = vec![Outcome::Untouched; targets.len()];

    // 1. Check every target: nothing is applied if any would refuse.
    let mut refused = false;
    for (index, target) in targets.iter().enumerate() {
        match client::request(target, &Request::Check { path: path.clone() }) {
            // In JSON, stdout carries one report per applied target, as for a single apply.
            Ok(Reply::Patch(report)) if format == MessageFormat::Human => {
                print_patch_report(target, &report, format, "Checked")
            }
            Ok(Reply::Patch(_)) => {}
            Ok(_) => {
                outcomes[index] = Outcome::Refused("unexpected reply".into());
                refused = true;
            }
            Err(error) => {
                error_line(format!("{error:#}"));
                outcomes[index] = Outcome::Refused(format!("{error:#}"));
                refused = true;
            }
        }
    }
    if refused {
        error_line("a target refused the check: nothing was applied");
        summary(targets, &outcomes, format);
        return Ok(EXIT_FAILURE);
    }

    // 2. Batch by batch.
    let mut done = 0;
    for (batch, &upto) in cumulative.iter().enumerate() {
        if upto <= done {
            continue;
        }
        status(
            "Batch",
            format!(
                "{} of {}: targets {}..={}",
                batch + 1,
                cumulative.len(),
                done + 1,
                upto
            ),
        );
        let mut failed = None;
        for index in done..upto {
            let target = &targets[index];
            match client::request(target, &Request::Apply { path: path.clone() }) {
                Ok(Reply::Patch(report)) => {
                    print_patch_report(target, &report, format, "Applied");
                    outcomes[index] = if report.already_applied {
                        Outcome::AlreadyApplied
                    } else {
                        Outcome::Applied
                    };
                }
                Ok(_) => {
                    failed = Some(format!(
                        "{} answered with an unexpected reply",
                        target.display()
                    ))
                }
                Err(error) => {
                    outcomes[index] = Outcome::Refused(format!("{error:#}"));
                    failed = Some(format!("{error:#}"));
                }
            }
            if failed.is_some() {
                break;
            }
        }
        done = upto;
        if failed.is_none() {
            if let Some(command) = &args.health {
                failed = health_check(command, targets, &outcomes)?;
            }
        }
        if let Some(why) = failed {
            error_line(format!(
                "{why}; rolling back every target this rollout patched"
            ));
            roll_back(targets, &mut outcomes);
            summary(targets, &outcomes, format);
            return Ok(EXIT_FAILURE);
        }
        if args.pause > 0.0 && upto < targets.len() {
            std::thread::sleep(Duration::from_secs_f64(args.pause));
        }
    }
    summary(targets, &outcomes, format);
    Ok(0)
}

/// The cumulative number of targets after each batch: `1,25%,100%` of 8 is 1, 2, 8.
fn batch_sizes(spec: &str, targets: usize) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let size = match part.strip_suffix('%') {
            Some(percent) => {
                let percent: f64 = percent
                    .parse()
                    .with_context(|| format!("`{part}` in --batches is not a percentage"))?;
                if !(0.0..=100.0).contains(&percent) {
                    bail!("`{part}` in --batches is not between 0% and 100%");
                }
                ((targets as f64) * percent / 100.0).ceil() as usize
            }
            None => part
                .parse()
                .with_context(|| format!("`{part}` in --batches is not a count or a percentage"))?,
        };
        out.push(size.min(targets));
    }
    if out.last() != Some(&targets) {
        out.push(targets);
    }
    Ok(out)
}

/// Runs the health command; `Some(why)` if it failed.
fn health_check(
    command: &str,
    targets: &[PathBuf],
    outcomes: &[Outcome],
) -> anyhow::Result<Option<String>> {
    let patched: Vec<String> = targets
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| matches!(o, Outcome::Applied | Outcome::AlreadyApplied))
        .map(|(t, _)| t.display().to_string())
        .collect();
    status("Health", format!("`{command}`"));
    let result = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("HOTPATCH_TARGETS", patched.join(","))
        .status()
        .with_context(|| format!("running the health command `{command}`"))?;
    Ok((!result.success()).then(|| format!("the health command `{command}` failed ({result})")))
}

/// Rolls back every target this rollout applied the patch to.
fn roll_back(targets: &[PathBuf], outcomes: &mut [Outcome]) {
    for (target, outcome) in targets.iter().zip(outcomes.iter_mut()) {
        if *outcome != Outcome::Applied {
            continue;
        }
        *outcome = match client::request(target, &Request::Rollback) {
            Ok(_) => Outcome::RolledBack,
            Err(error) => Outcome::RollbackFailed(format!("{error:#}")),
        };
    }
}

fn summary(targets: &[PathBuf], outcomes: &[Outcome], format: MessageFormat) {
    if format == MessageFormat::Json {
        let rows: Vec<_> = targets
            .iter()
            .zip(outcomes)
            .map(|(t, o)| serde_json::json!({ "target": t, "result": o.to_string() }))
            .collect();
        eprintln!(
            "{}",
            serde_json::json!({ "reason": "rollout-summary", "targets": rows })
        );
        return;
    }
    let width = targets
        .iter()
        .map(|t| t.display().to_string().len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!("{:<width$}  result", "target");
    for (target, outcome) in targets.iter().zip(outcomes) {
        println!("{:<width$}  {outcome}", target.display().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::batch_sizes;

    #[test]
    fn batches_are_cumulative_counts_or_percentages() {
        assert_eq!(batch_sizes("1,25%,100%", 8).unwrap(), [1, 2, 8]);
        assert_eq!(batch_sizes("100%", 3).unwrap(), [3]);
        assert_eq!(batch_sizes("1", 3).unwrap(), [1, 3]);
        assert_eq!(batch_sizes("50%", 3).unwrap(), [2, 3]);
        assert!(batch_sizes("ten", 3).is_err());
        assert!(batch_sizes("150%", 3).is_err());
    }
}
