//! An argument `#[hot_state]` does not take.

use hotreload_runtime::hot_state;
use serde::{Deserialize, Serialize};

#[hot_state(version = 1, persistent)]
#[derive(Serialize, Deserialize)]
pub struct Session {
    pub user: String,
}

fn main() {}
