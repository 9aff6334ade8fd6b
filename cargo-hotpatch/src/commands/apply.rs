//! `cargo hotpatch apply`: a patch rolled out over many processes. Every target is checked first
//! (nothing is applied if one would refuse); then batches are applied in turn, each followed by the
//! health command and a pause. A failed apply or health check rolls back every target this rollout
//! patched, and stops. A summary table ends it; the exit code says which of these happened.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::cli::{ApplyArgs, MessageFormat};
use crate::exit::Exit;
use crate::remote::client::{self, Unresolved};
use crate::remote::codec::Refused;
use crate::report::{print_patch_report, print_rollout_summary};
use crate::shell::{error_line, status, to_stdout};

/// What happened to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Untouched,
    Refused(String),
    Applied,
    AlreadyApplied,
    RolledBack,
    RollbackFailed(String),
    /// Whether the patch was applied could not be learned.
    Unknown(String),
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
            Outcome::Unknown(why) => write!(f, "UNKNOWN: {why}"),
        }
    }
}

/// Runs the rollout; returns how it ended: [`Exit::TargetRefused`] if a target refused the check
/// (nothing was applied), [`Exit::RolledBack`] if a batch failed and was rolled back.
pub fn apply(args: ApplyArgs) -> anyhow::Result<Exit> {
    let path = super::absolute(&args.patch.file)?;
    let cumulative = batch_sizes(&args.batches, args.patch.targets.target.len())?;
    let mut rollout = Rollout {
        path,
        targets: &args.patch.targets.target,
        format: args.patch.targets.message_format,
        outcomes: vec![Outcome::Untouched; args.patch.targets.target.len()],
        allow_entry_redirects: args.allow_entry_redirects,
    };
    // 1. Check every target: nothing is applied if any would refuse.
    if let Some(exit) = rollout.check_all() {
        error_line("a target refused the check: nothing was applied");
        return Ok(rollout.finish(exit));
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
        let mut failed = match rollout.apply_batch(done..upto) {
            BatchEnd::Done => None,
            BatchEnd::Failed(why) => Some(why),
            BatchEnd::Unknown(why) => {
                // Rolling the others back would act on a guess about this one: stop here.
                error_line(format!(
                    "{why}; the rollout stops here and rolls nothing back, since whether this target took the patch is unknown"
                ));
                return Ok(rollout.finish(Exit::Failure));
            }
        };
        done = upto;
        if let (None, Some(command)) = (&failed, &args.health) {
            failed = health_check(command, rollout.targets, &rollout.outcomes)?;
        }
        if let Some(why) = failed {
            error_line(format!(
                "{why}; rolling back every target this rollout patched"
            ));
            let exit = rollout.roll_back();
            return Ok(rollout.finish(exit));
        }
        if args.pause > 0.0 && upto < rollout.targets.len() {
            std::thread::sleep(Duration::from_secs_f64(args.pause));
        }
    }
    Ok(rollout.finish(Exit::Success))
}

/// How a batch ended.
enum BatchEnd {
    Done,
    /// A target refused (or did not take) the patch: nothing changed on it.
    Failed(String),
    /// Whether a target took the patch could not be learned.
    Unknown(String),
}

/// One patch going out to many targets, and what happened to each so far.
///
/// Its output is printed best effort: a closed stdout must not stop a rollout half way, before
/// it is finished or rolled back.
struct Rollout<'a> {
    path: PathBuf,
    targets: &'a [PathBuf],
    format: MessageFormat,
    outcomes: Vec<Outcome>,
    allow_entry_redirects: bool,
}

impl Rollout<'_> {
    /// Checks every target; how the rollout ends if one refused.
    fn check_all(&mut self) -> Option<Exit> {
        let mut exit = None;
        for (index, target) in self.targets.iter().enumerate() {
            match client::check(target, &self.path) {
                // In JSON, stdout carries one report per applied target, as for a single apply.
                Ok(report) if self.format == MessageFormat::Human => {
                    let _ = to_stdout(|out| {
                        print_patch_report(out, target, &report, self.format, "Checked")
                    });
                }
                Ok(_) => {}
                Err(error) => {
                    error_line(format!("{error:#}"));
                    self.outcomes[index] = Outcome::Refused(format!("{error:#}"));
                    // A refusal decides the exit code over a target that could not be asked.
                    if error.chain().any(|cause| cause.is::<Refused>()) {
                        exit = Some(Exit::TargetRefused);
                    } else {
                        exit.get_or_insert(Exit::Failure);
                    }
                }
            }
        }
        exit
    }

    /// Applies the patch to the targets of one batch; how it ended.
    fn apply_batch(&mut self, batch: Range<usize>) -> BatchEnd {
        for index in batch {
            let target = &self.targets[index];
            match client::apply_allowing(target, &self.path, self.allow_entry_redirects) {
                Ok(report) => {
                    let _ = to_stdout(|out| {
                        print_patch_report(out, target, &report, self.format, "Applied")
                    });
                    self.outcomes[index] = if report.already_applied {
                        Outcome::AlreadyApplied
                    } else {
                        Outcome::Applied
                    };
                }
                Err(error) if error.chain().any(|cause| cause.is::<Unresolved>()) => {
                    self.outcomes[index] = Outcome::Unknown(format!("{error:#}"));
                    return BatchEnd::Unknown(format!("{error:#}"));
                }
                Err(error) => {
                    self.outcomes[index] = Outcome::Refused(format!("{error:#}"));
                    return BatchEnd::Failed(format!("{error:#}"));
                }
            }
        }
        BatchEnd::Done
    }

    /// Rolls back every target this rollout applied the patch to.
    fn roll_back(&mut self) -> Exit {
        let mut exit = Exit::RolledBack;
        for (target, outcome) in self.targets.iter().zip(self.outcomes.iter_mut()) {
            if *outcome != Outcome::Applied {
                continue;
            }
            *outcome = match client::rollback(target) {
                Ok(_) => Outcome::RolledBack,
                Err(error) => {
                    exit = Exit::Failure;
                    Outcome::RollbackFailed(format!("{error:#}"))
                }
            };
        }
        exit
    }

    /// Prints the summary table; returns `exit`.
    fn finish(&self, exit: Exit) -> Exit {
        let rows = self
            .targets
            .iter()
            .map(PathBuf::as_path)
            .zip(self.outcomes.iter().map(Outcome::to_string));
        let _ = to_stdout(|out| print_rollout_summary(out, rows, self.format, exit));
        exit
    }
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
