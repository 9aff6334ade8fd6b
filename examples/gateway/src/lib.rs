//! The gateway's sessions and request handler: the part a patch replaces.
//!
//! One line in, one line out; every reply starts with `ok` or `err`, then the handler's version:
//!
//! | request | reply |
//! | --- | --- |
//! | `login NAME` | `ok v1 hello NAME` |
//! | `note TEXT` | `ok v1 notes=N` |
//! | `get` | `ok v1 user=NAME requests=N notes=A|B` |
//! | `slow MS` | `ok v1 slept MS` (the handler works for MS milliseconds) |
//! | `stats` | `ok v1 total=N` (requests over all connections) |
//!
//! `requests` counts the session's requests, this one included.

use hotreload_runtime::state::{Handle, Locked, Singleton};
use hotreload_runtime::{hot, hot_state};
use serde::{Deserialize, Serialize};

/// What the gateway keeps per connection. Its values live in the runtime's storage: a patch that
/// changes it migrates every live session, so no client loses anything.
#[hot_state(version = 1)]
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Session {
    pub peer: String,
    pub user: Option<String>,
    pub requests: u64,
    pub notes: Vec<String>,
}

/// Counts over all connections: a named singleton, where a plain program would use a `static`.
#[hot_state(version = 1)]
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Totals {
    pub requests: u64,
}

static TOTALS: Singleton<Totals> = Singleton::new("totals", Totals::default);

/// A new session for a connection from `peer`.
#[hot]
pub fn open_session(peer: String) -> Handle<Session> {
    Handle::new(Session {
        peer,
        ..Session::default()
    })
}

/// Answers one request line. The caller holds the session's lock (see `main.rs`), so a patch
/// swaps this function and migrates the session together.
#[hot]
pub fn handle(session: &mut Locked<'_, Session>, line: &str) -> String {
    let session = match session.get_mut() {
        Ok(session) => session,
        Err(error) => return format!("err v1 {error}"),
    };
    session.requests += 1;
    let total = match TOTALS.write() {
        Ok(mut totals) => {
            totals.requests += 1;
            totals.requests
        }
        Err(error) => return format!("err v1 {error}"),
    };
    let (command, argument) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
    match command {
        "login" if !argument.is_empty() => {
            session.user = Some(argument.to_owned());
            format!("ok v1 hello {argument}")
        }
        "note" => {
            session.notes.push(argument.to_owned());
            format!("ok v1 notes={}", session.notes.len())
        }
        "get" => format!(
            "ok v1 user={} requests={} notes={}",
            session.user.as_deref().unwrap_or("-"),
            session.requests,
            session.notes.join("|")
        ),
        "slow" => {
            let millis: u64 = argument.parse().unwrap_or(100);
            std::thread::sleep(std::time::Duration::from_millis(millis));
            format!("ok v1 slept {millis}")
        }
        "stats" => format!("ok v1 total={total}"),
        _ => format!("err v1 unknown request `{}`", line.trim()),
    }
}
