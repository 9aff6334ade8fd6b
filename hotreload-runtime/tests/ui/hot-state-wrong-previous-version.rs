//! Version 3 naming version 1 as its previous version: `previous` must be version 2.

use hotreload_runtime::hot_state;
use hotreload_runtime::state::{Migrate, MigrationError};
use serde::{Deserialize, Serialize};

#[hot_state(version = 1, snapshot)]
#[derive(Serialize, Deserialize)]
pub struct SessionV1 {
    pub user: String,
}

#[hot_state(version = 3, previous = SessionV1)]
#[derive(Serialize, Deserialize)]
pub struct Session {
    pub user: String,
}

impl Migrate<SessionV1> for Session {
    fn up(old: SessionV1) -> Result<Self, MigrationError> {
        Ok(Session { user: old.user })
    }
    fn down(&self) -> Result<SessionV1, MigrationError> {
        Ok(SessionV1 {
            user: self.user.clone(),
        })
    }
}

fn main() {}
