//! `previous = SessionV1` without `impl Migrate<SessionV1> for Session`.

use hotreload_runtime::hot_state;
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

fn main() {}
