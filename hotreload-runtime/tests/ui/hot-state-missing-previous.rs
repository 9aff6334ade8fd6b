//! Version 2 of a live type without `previous`: its values need a migration from version 1.

use hotreload_runtime::hot_state;
use serde::{Deserialize, Serialize};

#[hot_state(version = 2)]
#[derive(Serialize, Deserialize)]
pub struct Session {
    pub user: String,
    pub requests: u64,
}

fn main() {}
