//! Bringing one process to the patch its desired state names, through its control socket:
//! patches stack, so a patch below the top is returned to by rolling back, and any other by
//! applying it (patches are cumulative). The process verifies every patch itself.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hotreload_runtime::wire::patch_file::short_id;
use hotreload_runtime::wire::protocol::StatusReport;

use super::blobs;
use super::etcd::Etcd;
use super::keys::{Keys, PatchRef};
use crate::remote::client;
use crate::shell::status;

/// The ids of the patches active in a process, bottom of the stack first.
pub fn active_stack(process: &StatusReport) -> Vec<String> {
    let active: Vec<&str> = process
        .patches
        .iter()
        .filter(|p| p.active)
        .map(|p| p.id.as_str())
        .collect();
    if process.history_dropped == 0 {
        let mut stack: Vec<(u64, String)> = Vec::new();
        for item in &process.history {
            match item.action.as_str() {
                "committed" => stack.push((item.update_id, item.label.clone())),
                "rolled_back" => stack.retain(|(update, _)| *update != item.update_id),
                _ => {}
            }
        }
        let stack: Vec<String> = stack
            .into_iter()
            .map(|(_, id)| id)
            .filter(|id| active.contains(&id.as_str()))
            .collect();
        if stack.len() == active.len() {
            return stack;
        }
    }
    // The history's start is gone: the order the patches were applied in.
    let mut patches: Vec<_> = process.patches.iter().filter(|p| p.active).collect();
    patches.sort_by_key(|p| p.applied_unix);
    patches.into_iter().map(|p| p.id.clone()).collect()
}

/// Where the agent keeps the patch files it hands to processes.
pub struct PatchCache<'a> {
    pub etcd: &'a Etcd,
    pub keys: &'a Keys,
    pub dir: PathBuf,
    /// Whether the processes are asked to allow entry redirects when they apply a patch.
    pub allow_entry_redirects: bool,
}

impl PatchCache<'_> {
    /// A local file holding `patch`, fetched from etcd and checked against its hash if needed.
    fn file(&self, patch: &PatchRef) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(format!("{}.hotpatch", patch.sha256));
        if let Ok(bytes) = std::fs::read(&path) {
            if blobs::sha256_hex(&bytes) == patch.sha256 {
                return Ok(path);
            }
        }
        let bytes = blobs::fetch(self.etcd, self.keys, &patch.sha256)?;
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let partial = path.with_extension("partial");
        std::fs::write(&partial, &bytes)
            .and_then(|()| std::fs::rename(&partial, &path))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// Brings the process at `socket` from what `process` shows to `want`; returns the patch then on
/// top of its stack.
pub fn bring(
    cache: &PatchCache,
    socket: &Path,
    name: &str,
    process: &StatusReport,
    want: Option<&PatchRef>,
) -> anyhow::Result<Option<String>> {
    let mut stack = active_stack(process);
    loop {
        let top = stack.last().cloned();
        if top.as_deref() == want.map(|p| p.id.as_str()) {
            return Ok(top);
        }
        let want = match want {
            Some(patch) if !stack.contains(&patch.id) => patch,
            // What is wanted is below the top (or is no patch): roll back one.
            _ => {
                let undone = client::rollback(socket)?;
                status(
                    "Rolled back",
                    format!("patch {} on {name}", short_id(&undone.patch_id)),
                );
                stack.pop();
                continue;
            }
        };
        let file = cache.file(want)?;
        let report = client::apply_allowing(socket, &file, cache.allow_entry_redirects)?;
        status(
            "Applied",
            format!(
                "patch {} to {name}: {} function(s)",
                short_id(&want.id),
                report.changes.len()
            ),
        );
        return Ok(Some(want.id.clone()));
    }
}
