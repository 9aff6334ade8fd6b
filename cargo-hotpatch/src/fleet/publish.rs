//! `cargo hotpatch publish`: stores a patch in etcd and moves its build's processes to it batch by
//! batch ([`super::rollout`]), holding the service's publish lock; `--rollback` returns the
//! service to the state before the last publish.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use hotreload_runtime::wire::patch_file::{short_id, PatchFile};

use super::blobs;
use super::etcd::{Etcd, KeptLease};
use super::keys::{decode, encode, Desired, Keys, LastPublish, PatchRef};
use super::rollout::{read_reports, Outcome, Rollout, Row, Wait, Waits};
use crate::batches::batch_sizes;
use crate::exit::Exit;
use crate::shell::{error_line, status};

/// The publish lock's lease: a publisher that dies releases the service this long after.
const LOCK_TTL: i64 = 10;

/// What to publish, where, and how.
pub struct PublishConfig {
    pub endpoints: Vec<String>,
    pub service: String,
    /// The patch file (`None` with `rollback`).
    pub file: Option<PathBuf>,
    pub rollback: bool,
    pub batches: String,
    pub waits: Waits,
}

/// Another publish holds the service.
#[derive(Debug, thiserror::Error)]
#[error("another publish of service `{service}` is under way ({holder}): this one changed nothing; wait for it to finish, then publish again")]
pub struct PublishBusy {
    pub service: String,
    pub holder: String,
}

/// Runs the publish (or the rollback) under the service's lock.
pub fn publish(config: PublishConfig) -> anyhow::Result<Exit> {
    let keys = Keys::new(&config.service)?;
    let etcd = Etcd::connect(&config.endpoints)?;
    let lock = take_lock(&etcd, &keys, &config)?;
    let result = if config.rollback {
        roll_back_last(&etcd, &keys, &lock, config)
    } else {
        publish_file(&etcd, &keys, &lock, config)
    };
    if let Err(error) = etcd.revoke(lock) {
        error_line(format!(
            "{error:#}; the publish lock is released when its lease expires ({LOCK_TTL} s)"
        ));
    }
    result
}

fn take_lock(etcd: &Etcd, keys: &Keys, config: &PublishConfig) -> anyhow::Result<KeptLease> {
    let lease = etcd.retry(config.waits.timeout, |etcd| etcd.lease(LOCK_TTL))?;
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let holder = format!(
        "held by pid {} on host {} since {since}",
        std::process::id(),
        super::host_name()
    );
    match etcd.create(&keys.publish_lock(), holder.into_bytes(), lease.id)? {
        Ok(()) => Ok(lease),
        Err(held) => {
            let _ = etcd.revoke(lease);
            Err(PublishBusy {
                service: config.service.clone(),
                holder: String::from_utf8_lossy(&held).into_owned(),
            }
            .into())
        }
    }
}

/// The desired state of `build_id`'s processes now, if one was written.
fn current_desired(etcd: &Etcd, keys: &Keys, build_id: &str) -> anyhow::Result<Option<Desired>> {
    let key = keys.desired(build_id);
    etcd.get(&key)?
        .map(|bytes| decode(&key, &bytes))
        .transpose()
}

fn publish_file(
    etcd: &Etcd,
    keys: &Keys,
    lock: &KeptLease,
    config: PublishConfig,
) -> anyhow::Result<Exit> {
    let file = config
        .file
        .clone()
        .context("publish needs a patch file (or --rollback)")?;
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let parsed = PatchFile::parse(&bytes).with_context(|| format!("reading {}", file.display()))?;
    let build_id = parsed.manifest.base.build_id.to_ascii_lowercase();
    let timeout = config.waits.timeout;
    let sha256 = etcd.retry(timeout, |etcd| blobs::store(etcd, keys, &bytes))?;
    status(
        "Stored",
        format!(
            "patch {} ({} bytes) as {sha256}",
            short_id(&parsed.id),
            bytes.len()
        ),
    );
    let patch = PatchRef {
        id: parsed.id.clone(),
        sha256,
    };
    let current = etcd.retry(timeout, |etcd| current_desired(etcd, keys, &build_id))?;
    // An interrupted rollout left some processes on its patch: the others' state is the one known.
    let previous = current.as_ref().and_then(|d| match d.batch {
        None => d.patch.clone(),
        Some(_) => d.previous.clone(),
    });
    let last = LastPublish {
        build_id: build_id.clone(),
        patch: patch.clone(),
        previous: previous.clone(),
        rolled_back: false,
    };
    etcd.retry(timeout, |etcd| {
        etcd.put(&keys.last_publish(), encode(&last), None)
    })?;
    let (rows, others) = processes_of(etcd, keys, &build_id, timeout)?;
    if rows.is_empty() {
        bail!("no process of build {} reports to service `{}` ({} of other builds do): is an agent running beside them with `--service {}`?", short_id(&build_id), config.service, others.len(), config.service);
    }
    let mut rollout = Rollout {
        etcd,
        keys,
        lock,
        build_id,
        patch: Some(patch),
        previous,
        generation: current.map_or(0, |d| d.generation),
        rows,
        waits: config.waits,
    };
    let exit = move_in_batches(&mut rollout, &config.batches)?;
    // Stopped by etcd's absence, it was not rolled back: `--rollback` stays possible.
    if exit == Exit::RolledBack {
        let last = LastPublish {
            rolled_back: true,
            ..last
        };
        let _ = etcd.put(&keys.last_publish(), encode(&last), None);
    }
    Ok(rollout.finish(exit, &others))
}

/// The processes of `build_id` (sorted) and those of other builds, listed as left alone.
fn processes_of(
    etcd: &Etcd,
    keys: &Keys,
    build_id: &str,
    timeout: Duration,
) -> anyhow::Result<(Vec<Row>, Vec<Row>)> {
    let reports = etcd.retry(timeout, |etcd| read_reports(etcd, keys))?;
    let mut ours = Vec::new();
    let mut others = Vec::new();
    for report in reports.into_values() {
        if report.build_id.eq_ignore_ascii_case(build_id) {
            ours.push(Row {
                process: report.process,
                outcome: Outcome::Untouched,
            });
        } else {
            status(
                "Skipping",
                format!(
                    "{}: build {}, not the patch's: left alone",
                    report.process,
                    short_id(&report.build_id)
                ),
            );
            others.push(Row {
                process: report.process,
                outcome: Outcome::OtherBuild(short_id(&report.build_id).to_owned()),
            });
        }
    }
    ours.sort_by(|a, b| a.process.cmp(&b.process));
    others.sort_by(|a, b| a.process.cmp(&b.process));
    Ok((ours, others))
}

/// Moves the desired state batch by batch; how the rollout ended.
fn move_in_batches(rollout: &mut Rollout, batches: &str) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let count = rollout.rows.len();
    let cumulative = batch_sizes(batches, count)?;
    let patch = rollout.patch.clone();
    let mut done = 0;
    for (index, &upto) in cumulative.iter().enumerate() {
        if upto <= done {
            continue;
        }
        status(
            "Batch",
            format!(
                "{} of {}: processes {}..={}",
                index + 1,
                cumulative.len(),
                done + 1,
                upto
            ),
        );
        let batch = (upto < count).then(|| {
            rollout.rows[..upto]
                .iter()
                .map(|r| r.process.clone())
                .collect()
        });
        if let Err(error) = rollout.set_desired(patch.clone(), batch) {
            error_line(format!("{error:#}; the rollout stops here: the processes keep serving what they run; run `publish --rollback` when etcd is back"));
            return Ok(Exit::Failure);
        }
        let want = patch.as_ref().map(|p| p.id.clone());
        let mut failed = match rollout.wait_for(done..upto, want.as_deref(), Outcome::Applied) {
            Wait::Done => None,
            Wait::Failed(why) => Some(why),
        };
        done = upto;
        if failed.is_none() {
            failed = rollout.health(done)?;
        }
        if let Some(why) = failed {
            error_line(format!(
                "{why}; returning every process this publish moved to the previous patch"
            ));
            return Ok(rollout.roll_back());
        }
        if done < count && !rollout.waits.pause.is_zero() {
            std::thread::sleep(rollout.waits.pause);
        }
    }
    status(
        "Published",
        format!(
            "patch {} to {count} process(es) in {:.2} s",
            want_name(&patch),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(Exit::Success)
}

fn want_name(patch: &Option<PatchRef>) -> &str {
    patch.as_ref().map_or("none", |p| short_id(&p.id))
}

/// `publish --rollback`: the build of the last publish back to what it ran before it.
fn roll_back_last(
    etcd: &Etcd,
    keys: &Keys,
    lock: &KeptLease,
    config: PublishConfig,
) -> anyhow::Result<Exit> {
    let timeout = config.waits.timeout;
    let key = keys.last_publish();
    let last: LastPublish = match etcd.retry(timeout, |etcd| etcd.get(&key))? {
        Some(bytes) => decode(&key, &bytes)?,
        None => bail!("service `{}` has no publish to roll back", config.service),
    };
    if last.rolled_back {
        bail!(
            "the last publish of service `{}` (patch {}) is rolled back already",
            config.service,
            short_id(&last.patch.id)
        );
    }
    let current = etcd.retry(timeout, |etcd| current_desired(etcd, keys, &last.build_id))?;
    let (mut rows, others) = processes_of(etcd, keys, &last.build_id, timeout)?;
    for row in &mut rows {
        row.outcome = Outcome::Applied;
    }
    let mut rollout = Rollout {
        etcd,
        keys,
        lock,
        build_id: last.build_id.clone(),
        patch: Some(last.patch.clone()),
        previous: last.previous.clone(),
        generation: current.map_or(0, |d| d.generation),
        rows,
        waits: config.waits,
    };
    status(
        "Rolling back",
        format!(
            "patch {} to {}",
            short_id(&last.patch.id),
            want_name(&last.previous)
        ),
    );
    let exit = match rollout.roll_back() {
        Exit::RolledBack => Exit::Success,
        other => other,
    };
    let last = LastPublish {
        rolled_back: true,
        ..last
    };
    etcd.retry(timeout, |etcd| etcd.put(&key, encode(&last), None))?;
    Ok(rollout.finish(exit, &others))
}
