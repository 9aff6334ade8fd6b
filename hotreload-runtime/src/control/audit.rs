//! The audit log: with `HOTRELOAD_AUDIT_LOG` naming a file, every control request is appended to
//! it as one JSON line: when, who (the peer's uid and pid), what (the command, the patch file, the
//! patch id and the functions it changed), the result (or the step that refused it) and how long
//! it took; and every connection refused, with who made it and why. The file is created readable
//! by its owner only (mode 0600).

use std::io::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::sync::lock;
use crate::wire::protocol::{Reply, Request, Response};

/// Who sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The peer process's user id.
    pub uid: u32,
    /// The peer process's id.
    pub pid: i32,
}

/// Appends one request and its outcome to the audit log, if one is configured.
pub(crate) fn record(
    peer: Option<Peer>,
    request: Result<&Request, &str>,
    response: &Response,
    took: Duration,
) {
    let Some(log) = log() else { return };
    let mut entry = json!({
        "time_unix_ms": unix_millis(),
        "peer": peer.map(|p| json!({ "uid": p.uid, "pid": p.pid })),
        "took_us": took.as_micros() as u64,
    });
    match request {
        Ok(request) => {
            let described = serde_json::to_value(request).unwrap_or(Value::Null);
            entry["command"] = described["command"].clone();
            if let Some(path) = described.get("path") {
                entry["path"] = path.clone();
            }
        }
        Err(line) => {
            entry["command"] = json!("malformed");
            entry["request"] = json!(line.chars().take(200).collect::<String>());
        }
    }
    match response {
        Response::Ok(reply) => {
            entry["result"] = json!("ok");
            if let Reply::Patch(report) | Reply::RolledBack(report) = reply {
                entry["patch"] = json!(report.patch_id);
                entry["dry_run"] = json!(report.dry_run);
                entry["already_applied"] = json!(report.already_applied);
                entry["functions"] = json!(report
                    .changes
                    .iter()
                    .map(|c| json!({ "key": c.key, "from": c.from, "to": c.to }))
                    .collect::<Vec<_>>());
            }
        }
        Response::Error(error) => {
            entry["result"] = json!("error");
            entry["step"] = json!(error.step);
            entry["message"] = json!(error.message);
        }
    }
    write(log, &entry);
}

/// Appends a connection refused before any request was read.
pub(crate) fn refused(peer: Option<Peer>, reason: &str) {
    let Some(log) = log() else { return };
    let entry = json!({
        "time_unix_ms": unix_millis(),
        "peer": peer.map(|p| json!({ "uid": p.uid, "pid": p.pid })),
        "command": "connect",
        "result": "refused",
        "message": reason,
    });
    write(log, &entry);
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn write(log: &Mutex<Option<std::fs::File>>, entry: &Value) {
    let mut file = lock(log);
    if let Some(file) = file.as_mut() {
        if let Err(error) = writeln!(file, "{entry}") {
            tracing::warn!(%error, "could not write the audit log");
        }
    }
}

/// Appends an event that is not a request (a patch quarantined at start) to the audit log.
pub(crate) fn record_event(event: &str, mut details: Value) {
    let Some(log) = log() else { return };
    details["time_unix_ms"] = json!(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0));
    details["event"] = json!(event);
    if let Some(file) = lock(log).as_mut() {
        if let Err(error) = writeln!(file, "{details}") {
            tracing::warn!(%error, "could not write the audit log");
        }
    }
}

fn log() -> Option<&'static Mutex<Option<std::fs::File>>> {
    static LOG: OnceLock<Option<Mutex<Option<std::fs::File>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let path = std::env::var_os("HOTRELOAD_AUDIT_LOG").filter(|p| !p.is_empty())?;
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(file) => Some(Mutex::new(Some(file))),
            Err(error) => {
                tracing::error!(%error, path = %std::path::Path::new(&path).display(), "could not open the audit log");
                None
            }
        }
    })
    .as_ref()
}
