//! A generic type: its values are kept under one name and version, so it cannot be generic.

use hotreload_runtime::hot_state;
use serde::{Deserialize, Serialize};

#[hot_state(version = 1)]
#[derive(Serialize, Deserialize)]
pub struct Cache<T> {
    pub entries: Vec<T>,
}

fn main() {}
