//! No `version`: every `#[hot_state]` type has one.

use hotreload_runtime::hot_state;
use serde::{Deserialize, Serialize};

#[hot_state(name = "app::Session")]
#[derive(Serialize, Deserialize)]
pub struct Session {
    pub user: String,
}

fn main() {}
