//! `previous` on version 1: there is no version before it.

use hotreload_runtime::hot_state;
use serde::{Deserialize, Serialize};

#[hot_state(version = 1, snapshot)]
#[derive(Serialize, Deserialize)]
pub struct SessionV0 {
    pub user: String,
}

#[hot_state(version = 1, previous = SessionV0)]
#[derive(Serialize, Deserialize)]
pub struct Session {
    pub user: String,
}

fn main() {}
