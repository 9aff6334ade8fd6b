//! What the base build's executable says about itself that every patch built against it needs:
//! its hot functions, its private data, its `#[hot_state]` records and its type layouts.
//!
//! Reading them is a pass over a binary of tens of megabytes and its debug information (about
//! 50 ms for the 26 MB test host, a third of a patch build), and the executable of a base never
//! changes: they are read once per build and kept next to the base record.

use std::collections::BTreeSet;

use anyhow::Context as _;
use hotreload_runtime::state::StateRecord;

use crate::analysis::{self, HostLocalData, HotFunctions};
use crate::base::BaseRecord;
use crate::layout::{self, Layouts};
use crate::states;

/// The facts of one base build.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HostFacts {
    /// The build they were read from: a base recorded later in the same place is another build.
    build_id: String,
    /// The hot functions, with their signature fingerprints.
    pub hot: HotFunctions,
    /// Private statics and thread-locals: mangled name to offset.
    pub local_data: HostLocalData,
    /// The `#[hot_state]` records.
    pub states: Vec<StateRecord>,
    /// The layouts of the workspace crates' types; `None` without debug information.
    pub layouts: Option<Layouts>,
}

impl HostFacts {
    /// The facts of `base`'s executable, from the cache kept beside it or read (and cached) now.
    pub fn of(base: &BaseRecord) -> anyhow::Result<Self> {
        let cache = base.executable.with_extension("facts.json");
        if let Ok(bytes) = std::fs::read(&cache) {
            if let Ok(facts) = serde_json::from_slice::<HostFacts>(&bytes) {
                if facts.build_id == base.identity.build_id {
                    return Ok(facts);
                }
            }
        }
        let facts = Self::read(base)?;
        // Written whole then renamed: a concurrent reader sees the old cache or the new one.
        let partial = cache.with_extension("json.partial");
        std::fs::write(&partial, serde_json::to_vec(&facts)?)
            .with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, &cache)
            .with_context(|| format!("writing {}", cache.display()))?;
        Ok(facts)
    }

    fn read(base: &BaseRecord) -> anyhow::Result<Self> {
        let (hot, local_data) = analysis::host_hot_functions(&base.executable)?;
        let crates: BTreeSet<String> = base.crates.iter().map(|c| c.name.clone()).collect();
        Ok(HostFacts {
            build_id: base.identity.build_id.clone(),
            hot,
            local_data,
            states: states::read(&base.executable)?,
            layouts: layout::read(&base.executable, &crates)?,
        })
    }
}
