//! One publish moving the desired state of a build's processes batch by batch: each batch is
//! written, its processes' reports are awaited, the health command runs, and the processes are
//! asked for again; on any failure every process moved is returned to the previous patch.

use std::collections::HashMap;
use std::fmt;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hotreload_runtime::wire::patch_file::short_id;

use super::etcd::{Etcd, KeptLease};
use super::keys::{decode, encode, Desired, Keys, PatchRef, ProcessReport};
use crate::cli::MessageFormat;
use crate::exit::Exit;
use crate::report::print_rollout_summary;
use crate::shell::{error_line, status, to_stdout};

/// What happened to one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Untouched,
    Applied,
    Refused(String),
    Disappeared,
    RolledBack,
    RollbackFailed(String),
    /// A process of another build: never moved.
    OtherBuild(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Untouched => write!(f, "untouched"),
            Outcome::Applied => write!(f, "applied"),
            Outcome::Refused(why) => write!(f, "refused: {why}"),
            Outcome::Disappeared => write!(f, "DISAPPEARED (the process or its agent stopped)"),
            Outcome::RolledBack => write!(f, "rolled back"),
            Outcome::RollbackFailed(why) => write!(f, "ROLLBACK FAILED: {why}"),
            Outcome::OtherBuild(build) => write!(f, "other build {build}: left alone"),
        }
    }
}

/// One process of the rollout, by `host/pid`.
pub struct Row {
    pub process: String,
    pub outcome: Outcome,
}

/// How long to wait, and for what: the publish's settings.
pub struct Waits {
    /// For a batch's reports, and for etcd when it is unreachable.
    pub timeout: Duration,
    pub health: Option<String>,
    pub pause: Duration,
    pub format: MessageFormat,
}

/// The desired state of one build, moved by one publisher holding the lock.
pub struct Rollout<'a> {
    pub etcd: &'a Etcd,
    pub keys: &'a Keys,
    pub lock: &'a KeptLease,
    pub build_id: String,
    /// The patch going out (`None` for a rollback to the build as it started).
    pub patch: Option<PatchRef>,
    pub previous: Option<PatchRef>,
    pub generation: u64,
    pub rows: Vec<Row>,
    pub waits: Waits,
}

/// How waiting for reports ended.
pub enum Wait {
    Done,
    Failed(String),
}

impl Rollout<'_> {
    /// Writes the next desired state: `patch` for `batch` (`None`: everyone), `previous` for
    /// the others. Waits for etcd up to the timeout.
    pub fn set_desired(
        &mut self,
        patch: Option<PatchRef>,
        batch: Option<Vec<String>>,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.lock.is_lost(),
            "the publish lock's lease expired while etcd was unreachable: another publish may have started; nothing more is written"
        );
        self.generation += 1;
        let desired = Desired {
            generation: self.generation,
            patch,
            previous: self.previous.clone(),
            batch,
        };
        let key = self.keys.desired(&self.build_id);
        self.etcd.retry(self.waits.timeout, |etcd| {
            etcd.put(&key, encode(&desired), None)
        })
    }

    /// Every process's report, by `host/pid`.
    pub fn reports(&self) -> anyhow::Result<HashMap<String, ProcessReport>> {
        read_reports(self.etcd, self.keys)
    }

    /// Waits until each process in `rows[range]` reports running `want` at the current
    /// generation: a refusal, a process that disappears or the timeout fails it.
    pub fn wait_for(
        &mut self,
        range: std::ops::Range<usize>,
        want: Option<&str>,
        reached: Outcome,
    ) -> Wait {
        let until = Instant::now() + self.waits.timeout;
        let mut unreachable = false;
        loop {
            let reports = match self.reports() {
                Ok(reports) => reports,
                Err(error) if Instant::now() >= until => {
                    return Wait::Failed(format!(
                        "{error:#}: etcd was unreachable until the timeout ({:?})",
                        self.waits.timeout
                    ))
                }
                Err(error) => {
                    if !unreachable {
                        status("Waiting", format!("{error:#}; the processes keep serving; waiting for etcd up to {:?}", self.waits.timeout));
                        unreachable = true;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                    continue;
                }
            };
            let mut pending = Vec::new();
            let format = self.waits.format;
            for row in &mut self.rows[range.clone()] {
                if row.outcome == reached {
                    continue;
                }
                let Some(report) = reports.get(&row.process) else {
                    row.outcome = Outcome::Disappeared;
                    return Wait::Failed(format!(
                        "{} disappeared: its report is gone (the process or its agent stopped)",
                        row.process
                    ));
                };
                if report.generation < self.generation {
                    pending.push(row.process.clone());
                } else if let Some(why) = &report.error {
                    row.outcome = Outcome::Refused(why.clone());
                    return Wait::Failed(format!("{} did not take it: {why}", row.process));
                } else if report.patch.as_deref() == want {
                    row.outcome = reached.clone();
                    print_reached(format, report, &reached);
                } else {
                    pending.push(row.process.clone());
                }
            }
            if pending.is_empty() {
                return Wait::Done;
            }
            if Instant::now() >= until {
                return Wait::Failed(format!(
                    "no report of reaching generation {} within {:?} from {}",
                    self.generation,
                    self.waits.timeout,
                    pending.join(", ")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs the health command after a batch, then checks every moved process still reports;
    /// `Some(why)` if either failed.
    pub fn health(&mut self, moved: usize) -> anyhow::Result<Option<String>> {
        if let Some(command) = &self.waits.health {
            let reports = self.reports().unwrap_or_default();
            let moved_rows = &self.rows[..moved];
            let sockets: Vec<&str> = moved_rows
                .iter()
                .filter_map(|row| reports.get(&row.process).map(|r| r.socket.as_str()))
                .collect();
            let processes: Vec<&str> = moved_rows.iter().map(|r| r.process.as_str()).collect();
            status("Health", format!("`{command}`"));
            let result = Command::new("sh")
                .arg("-c")
                .arg(command)
                .env("HOTPATCH_TARGETS", sockets.join(","))
                .env("HOTPATCH_PROCESSES", processes.join(","))
                .status()
                .with_context(|| format!("running the health command `{command}`"))?;
            if !result.success() {
                return Ok(Some(format!(
                    "the health command `{command}` failed ({result})"
                )));
            }
        }
        let want = self.patch.as_ref().map(|p| p.id.clone());
        Ok(
            match self.wait_for(0..moved, want.as_deref(), Outcome::Applied) {
                Wait::Done => None,
                Wait::Failed(why) => Some(why),
            },
        )
    }

    /// Returns every process of the build to `previous`; the exit: rolled back, or a failure
    /// if a process could not be returned.
    pub fn roll_back(&mut self) -> Exit {
        let started = Instant::now();
        let previous = self.previous.clone();
        if let Err(error) = self.set_desired(previous.clone(), None) {
            error_line(format!(
                "{error:#}; the processes keep running what they run: run `publish --rollback` when etcd is back"
            ));
            return Exit::Failure;
        }
        let moved: Vec<usize> = (0..self.rows.len())
            .filter(|&i| matches!(self.rows[i].outcome, Outcome::Applied | Outcome::Refused(_)))
            .collect();
        // A process that refused runs the previous patch already: its refusal stays in the table.
        let refused: Vec<(usize, Outcome)> = moved
            .iter()
            .filter(|&&i| matches!(self.rows[i].outcome, Outcome::Refused(_)))
            .map(|&i| (i, self.rows[i].outcome.clone()))
            .collect();
        for &index in &moved {
            self.rows[index].outcome = Outcome::Applied;
        }
        let want = previous.map(|p| p.id);
        let mut exit = Exit::RolledBack;
        for index in moved {
            if let Wait::Failed(why) =
                self.wait_for(index..index + 1, want.as_deref(), Outcome::RolledBack)
            {
                if self.rows[index].outcome != Outcome::Disappeared {
                    self.rows[index].outcome = Outcome::RollbackFailed(why);
                    exit = Exit::Failure;
                }
            }
        }
        for (index, refusal) in refused {
            if self.rows[index].outcome == Outcome::RolledBack {
                self.rows[index].outcome = refusal;
            }
        }
        status(
            "Rolled back",
            format!("in {:.2} s", started.elapsed().as_secs_f64()),
        );
        exit
    }

    /// Prints the summary table; returns `exit`.
    pub fn finish(&self, exit: Exit, others: &[Row]) -> Exit {
        let rows = self.rows.iter().chain(others).map(|row| {
            (
                std::path::Path::new(row.process.as_str()),
                row.outcome.to_string(),
            )
        });
        let _ = to_stdout(|out| print_rollout_summary(out, rows, self.waits.format, exit));
        exit
    }
}

/// Every process's report in `keys`' service, by `host/pid`.
pub fn read_reports(etcd: &Etcd, keys: &Keys) -> anyhow::Result<HashMap<String, ProcessReport>> {
    let mut reports = HashMap::new();
    for (key, value) in etcd.get_prefix(&keys.reports_prefix())? {
        let report: ProcessReport = decode(&key, &value)?;
        reports.insert(report.process.clone(), report);
    }
    Ok(reports)
}

/// Says that a process reached what a batch or the rollback asked of it.
fn print_reached(format: MessageFormat, report: &ProcessReport, reached: &Outcome) {
    let patch = report
        .patch
        .as_deref()
        .map_or("none (the build as started)", short_id);
    if format == MessageFormat::Json {
        let record = serde_json::json!({
            "reason": "fleet-process",
            "process": report.process,
            "socket": report.socket,
            "patch": report.patch,
            "result": reached.to_string(),
        });
        let _ = to_stdout(|out| {
            use std::io::Write as _;
            writeln!(out, "{record}")
        });
    } else {
        status(
            if *reached == Outcome::Applied {
                "Applied"
            } else {
                "Rolled back"
            },
            format!("{} runs patch {patch}", report.process),
        );
    }
}
