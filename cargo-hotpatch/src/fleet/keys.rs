//! Where a service's fleet state lives in etcd, and the records stored there.
//!
//! ```text
//! /hotreload/<service>/desired/<build id>      Desired: the patch the processes of that build run
//! /hotreload/<service>/last-publish            LastPublish: what `publish --rollback` undoes
//! /hotreload/<service>/publish-lock            the publisher holding it, under its lease
//! /hotreload/<service>/reports/<host>/<pid>    ProcessReport, under its agent's lease
//! /hotreload/<service>/blobs/<sha256>/meta     BlobMeta, written after every chunk
//! /hotreload/<service>/blobs/<sha256>/<n>      chunk n of the patch file
//! ```
//!
//! Nothing read here is trusted by itself: a blob is checked against its SHA-256 after it is
//! reassembled, and the process checks the patch file's hash, signature and build before loading.

use serde::{Deserialize, Serialize};

/// The keys of one service.
#[derive(Debug, Clone)]
pub struct Keys {
    root: String,
}

impl Keys {
    /// The keys of `service`; a name that would make keys ambiguous is refused.
    pub fn new(service: &str) -> anyhow::Result<Self> {
        let valid = !service.is_empty()
            && service
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            anyhow::bail!(
                "`{service}` is not a service name: use letters, digits, `-`, `_` and `.` only"
            );
        }
        Ok(Keys {
            root: format!("/hotreload/{service}/"),
        })
    }

    /// Every desired state of the service (one per build), the prefix an agent watches.
    pub fn desired_prefix(&self) -> String {
        format!("{}desired/", self.root)
    }

    /// The desired state of the processes of one build.
    pub fn desired(&self, build_id: &str) -> String {
        format!("{}{build_id}", self.desired_prefix())
    }

    pub fn last_publish(&self) -> String {
        format!("{}last-publish", self.root)
    }

    pub fn publish_lock(&self) -> String {
        format!("{}publish-lock", self.root)
    }

    /// Every process's report.
    pub fn reports_prefix(&self) -> String {
        format!("{}reports/", self.root)
    }

    /// One process's report; `process` is `host/pid`.
    pub fn report(&self, process: &str) -> String {
        format!("{}{process}", self.reports_prefix())
    }

    pub fn blob_meta(&self, sha256: &str) -> String {
        format!("{}blobs/{sha256}/meta", self.root)
    }

    pub fn blob_chunk(&self, sha256: &str, index: usize) -> String {
        format!("{}blobs/{sha256}/{index}", self.root)
    }
}

/// A patch as the fleet names it: the id the process reports, and the hash of the file's bytes
/// under which the blob is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchRef {
    pub id: String,
    pub sha256: String,
}

/// What the processes of one build should run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// Raised by every write, so a report can say which one it answers.
    pub generation: u64,
    /// The patch the processes in `batch` run (`None`: the build as it started, no patch).
    pub patch: Option<PatchRef>,
    /// What the processes outside `batch` run.
    pub previous: Option<PatchRef>,
    /// The processes (`host/pid`) that run `patch`; `None`: every process of the build,
    /// including those that start later.
    pub batch: Option<Vec<String>>,
}

impl Desired {
    /// What the process `process` should run.
    pub fn wanted_by(&self, process: &str) -> Option<&PatchRef> {
        match &self.batch {
            Some(batch) if !batch.iter().any(|p| p == process) => self.previous.as_ref(),
            _ => self.patch.as_ref(),
        }
    }
}

/// A process as its agent last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessReport {
    /// `host/pid`.
    pub process: String,
    /// Its control socket on its host.
    pub socket: String,
    pub build_id: String,
    /// The id of the patch on top of its stack (`None`: no patch active).
    pub patch: Option<String>,
    /// The desired state's generation this report answers (0: none was written yet).
    pub generation: u64,
    /// Why the process could not be brought to that generation's state, if it could not.
    pub error: Option<String>,
}

/// The last `publish`: what `publish --rollback` returns the service from, and to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastPublish {
    pub build_id: String,
    pub patch: PatchRef,
    pub previous: Option<PatchRef>,
    /// Set once `publish --rollback` (or the publish itself, on failure) returned it.
    pub rolled_back: bool,
}

/// How a stored patch file is laid out in chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    pub size: usize,
    pub chunks: usize,
}

/// Encodes a record.
pub fn encode(record: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(record).expect("fleet records serialise")
}

/// Decodes the record stored at `key`.
pub fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> anyhow::Result<T> {
    serde_json::from_slice(bytes).map_err(|error| {
        anyhow::anyhow!("the value at etcd key {key} is not what this tool writes there: {error}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_decides_who_takes_the_patch_and_none_means_everyone() {
        let patch = |id: &str| PatchRef {
            id: id.into(),
            sha256: format!("{id}-hash"),
        };
        let mut desired = Desired {
            generation: 3,
            patch: Some(patch("new")),
            previous: Some(patch("old")),
            batch: Some(vec!["h1/10".into()]),
        };
        assert_eq!(desired.wanted_by("h1/10"), Some(&patch("new")));
        assert_eq!(desired.wanted_by("h2/11"), Some(&patch("old")));
        desired.batch = None;
        assert_eq!(desired.wanted_by("h2/11"), Some(&patch("new")));
    }

    #[test]
    fn service_names_cannot_reach_other_keys() {
        assert!(Keys::new("gateway-eu.1").is_ok());
        for bad in ["", "a/b", "a b", "a\n"] {
            assert!(Keys::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Keys::new("svc").unwrap().report("h/1"),
            "/hotreload/svc/reports/h/1"
        );
    }
}
