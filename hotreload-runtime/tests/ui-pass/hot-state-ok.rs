//! Twin of the `ui/hot-state-*.rs` cases: a live type of version 2 with its version-1 snapshot as
//! `previous` and the migration from it, a live enum, and a type stored under `name = "..."`.

use hotreload_runtime::hot_state;
use hotreload_runtime::state::{Migrate, MigrationError};
use serde::{Deserialize, Serialize};

#[hot_state(version = 1, snapshot)]
#[derive(Serialize, Deserialize)]
pub struct SessionV1 {
    pub user: String,
    pub requests: u32,
}

#[hot_state(version = 2, previous = SessionV1)]
#[derive(Serialize, Deserialize)]
pub struct Session {
    pub user: String,
    pub requests: u64,
}

impl Migrate<SessionV1> for Session {
    fn up(old: SessionV1) -> Result<Self, MigrationError> {
        Ok(Session {
            user: old.user,
            requests: old.requests.into(),
        })
    }
    fn down(&self) -> Result<SessionV1, MigrationError> {
        let requests = u32::try_from(self.requests).map_err(MigrationError::new)?;
        Ok(SessionV1 {
            user: self.user.clone(),
            requests,
        })
    }
}

#[hot_state(version = 1)]
#[derive(Serialize, Deserialize)]
pub enum Mode {
    Idle,
    Busy { since: u64 },
}

#[hot_state(version = 1, name = "app::Cache")]
#[derive(Serialize, Deserialize)]
pub struct Cache {
    pub entries: Vec<u32>,
}

fn main() {
    let session = Session::up(SessionV1 {
        user: "ada".into(),
        requests: 3,
    })
    .unwrap();
    assert_eq!(session.requests, 3);
    assert_eq!(session.down().unwrap().requests, 3);
    let _ = (Mode::Idle, Mode::Busy { since: 0 });
    let _ = Cache { entries: vec![1] };
}
