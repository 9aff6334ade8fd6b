//! Private statics that earlier patches against the same base introduced: where each lives, so
//! a later (cumulative) patch reaches the running copy instead of getting a fresh one, or is
//! refused when it cannot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use hotreload_runtime::wire::patch_file::short_id;

use crate::host::{BaseRecord, HostLocalData};
use crate::object::read::data_offsets;
use crate::patch::redirect::{is_tracing_callsite, static_name};
use crate::patch::refusal::Refusal;

/// Private statics that patches built against a base introduced: where each lives, so later
/// (cumulative) patches reach the running copy instead of getting a fresh one.
#[derive(Default)]
pub struct Introduced {
    file: PathBuf,
    statics: BTreeMap<String, Origin>,
}

/// The patch that introduced a static and its offset in that patch's library (in its
/// thread-local block for a thread-local; none when the library does not have it).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Origin {
    patch: String,
    offset: Option<u64>,
}

/// Where the statics patches against `base` introduced are remembered.
fn remembered(base: &BaseRecord, work_dir: &Path) -> PathBuf {
    let id = &base.identity.build_id;
    work_dir.join(format!("introduced-statics.{}.json", short_id(id)))
}

/// Forgets the statics earlier patches against `base` introduced, when a new process of it
/// starts: it has loaded none of those patches, so a later patch must get fresh copies of them
/// instead of cells pointing into libraries it never loaded. (A build can be reproducible: an
/// earlier session of the same build id would otherwise leave its record behind.) Kept when the
/// app will apply approved patches at start (`HOTRELOAD_PATCH_DIR` set): those may be the ones.
pub fn forget_introduced_statics(base: &BaseRecord, work_dir: &Path) -> anyhow::Result<()> {
    if std::env::var_os("HOTRELOAD_PATCH_DIR").is_some_and(|dir| !dir.is_empty()) {
        return Ok(());
    }
    let file = remembered(base, work_dir);
    match std::fs::remove_file(&file) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("removing {}", file.display()))
        }
        _ => Ok(()),
    }
}

impl Introduced {
    pub fn load(base: &BaseRecord, work_dir: &Path) -> Self {
        let file = remembered(base, work_dir);
        let statics = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Introduced { file, statics }
    }

    /// Refuses a patch whose live code would get a fresh copy of a static an earlier patch
    /// introduced (one that could not be redirected).
    pub fn refuse_forks(&self, new_statics: &[(String, String)]) -> Result<(), Refusal> {
        if let Some((mangled, via)) = new_statics.iter().find(|(mangled, _)| {
            self.statics.contains_key(mangled) && !is_tracing_callsite(mangled)
        }) {
            return Err(Refusal::IntroducedStaticWouldFork {
                name: static_name(mangled),
                via: via.clone(),
            });
        }
        Ok(())
    }

    /// The statics address cells may point at: the host's private statics, and those earlier
    /// patches introduced (redirected to those patches' copies, like the host's own).
    pub fn redirect_targets(&self, host_local_data: &HostLocalData) -> HostLocalData {
        let mut targets = host_local_data.clone();
        for (mangled, origin) in &self.statics {
            if let Some(offset) = origin.offset {
                targets.insert(mangled.clone(), offset);
            }
        }
        targets
    }

    /// The patch that introduced each static the host does not have, by mangled name.
    pub fn origins(&self, host_local_data: &HostLocalData) -> BTreeMap<String, String> {
        self.statics
            .iter()
            .filter(|(mangled, _)| !host_local_data.contains_key(*mangled))
            .map(|(mangled, origin)| (mangled.clone(), origin.patch.clone()))
            .collect()
    }

    /// The patch that introduced `mangled`, unless the host has it.
    pub fn origin_patch(&self, mangled: &str, host_local_data: &HostLocalData) -> Option<String> {
        self.statics
            .get(mangled)
            .filter(|_| !host_local_data.contains_key(mangled))
            .map(|origin| origin.patch.clone())
    }

    /// Remembers the statics this patch introduces, with their place in its library.
    pub fn record(
        &mut self,
        patch: &str,
        library: &Path,
        new_statics: &[(String, String)],
    ) -> anyhow::Result<()> {
        let fresh: Vec<&String> = new_statics
            .iter()
            .map(|(mangled, _)| mangled)
            .filter(|mangled| !self.statics.contains_key(*mangled) && !is_tracing_callsite(mangled))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let offsets = data_offsets(library, fresh.iter().copied())?;
        for mangled in fresh {
            self.statics.insert(
                mangled.clone(),
                Origin {
                    patch: patch.to_owned(),
                    offset: offsets.get(mangled).copied(),
                },
            );
        }
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&self.file, serde_json::to_vec(&self.statics)?)
            .with_context(|| format!("writing {}", self.file.display()))
    }
}
