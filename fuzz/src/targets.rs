//! The fuzz targets: each takes arbitrary bytes, must not panic (or hang) on any of them, checks
//! what it can about the answer, and returns the kind of outcome it reached (a new kind keeps the
//! input in the driver's corpus).

use hotreload_runtime::wire::patch_file::{Manifest, PatchFile, PatchFileError};
use hotreload_runtime::wire::protocol::{LinkHandshake, Request, Response};
use hotreload_runtime::wire::state_record::{parse_records, StateRecord, RECORD_MAGIC};

/// A fuzz target: bytes in, the kind of outcome out; a panic is a finding.
pub type Target = fn(&[u8]) -> String;

/// Every target, by the name of its corpus directory.
pub const ALL: &[(&str, Target)] = &[
    ("patch_file", patch_file),
    ("manifest", manifest),
    ("control_protocol", control_protocol),
    #[cfg(unix)]
    ("control_server", crate::server::control_server),
    ("state_records", state_records),
];

/// The patch-file reader: a file it accepts writes back to the same manifest, library and
/// signature, and its id is the hash of the manifest bytes it read.
pub fn patch_file(data: &[u8]) -> String {
    match PatchFile::parse(data) {
        Ok(patch) => {
            let again = PatchFile::parse(&patch.to_bytes()).expect("a parsed patch writes back");
            assert_eq!(again.manifest, patch.manifest);
            assert_eq!(again.library, patch.library);
            assert_eq!(again.signature, patch.signature);
            assert_eq!(patch.id.len(), 64, "an id is a sha256 in hex");
            let _ = patch.short_id();
            format!("ok signed={}", patch.signature.is_some())
        }
        Err(error) => {
            let message = error.to_string();
            assert!(!message.is_empty());
            patch_file_error_kind(&error)
        }
    }
}

fn patch_file_error_kind(error: &PatchFileError) -> String {
    match error {
        PatchFileError::Manifest(json) => format!("manifest {:?}", json.classify()),
        PatchFileError::Truncated {
            what,
            needed,
            available,
        } => {
            assert!(needed > available, "{error}");
            format!("truncated {what}")
        }
        other => {
            let debug = format!("{other:?}");
            debug
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or_default()
                .to_owned()
        }
    }
}

/// The manifest (the JSON inside a patch file): one it accepts is packaged into a patch file that
/// reads back to the same manifest.
pub fn manifest(data: &[u8]) -> String {
    match serde_json::from_slice::<Manifest>(data) {
        Ok(manifest) => {
            let library = b"\x7fELF fuzz".to_vec();
            let patch = PatchFile::new(manifest.clone(), library.clone());
            let again = PatchFile::parse(&patch.to_bytes()).expect("a packaged manifest reads");
            let expected = Manifest {
                library_sha256: again.manifest.library_sha256.clone(),
                library_len: library.len() as u64,
                ..manifest
            };
            assert_eq!(again.manifest, expected);
            assert_eq!(again.id, patch.id);
            format!(
                "ok redirects={} states={}",
                expected.redirects.len().min(2),
                expected.states.len().min(2)
            )
        }
        Err(error) => format!("error {:?}", error.classify()),
    }
}

/// The control protocol's parsers on both sides: a request line (the process's side), a response
/// line and a handshake line (the tool's side). What parses writes back to the same value.
pub fn control_protocol(data: &[u8]) -> String {
    [
        round_trip::<Request>(data),
        round_trip::<Response>(data),
        round_trip::<LinkHandshake>(data),
    ]
    .join(" ")
}

fn round_trip<T>(data: &[u8]) -> String
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    match serde_json::from_slice::<T>(data) {
        Ok(value) => {
            let text = serde_json::to_string(&value).expect("a parsed value serialises");
            let again: T = serde_json::from_str(&text).expect("a written value parses");
            assert_eq!(again, value);
            "ok".to_owned()
        }
        Err(error) => format!("{:?}", error.classify()),
    }
}

/// The `.hotreload_states` section reader: every record it finds is re-encoded and read back
/// unchanged.
pub fn state_records(data: &[u8]) -> String {
    let records = parse_records(data);
    let encoded: Vec<u8> = records.iter().flat_map(encode_record).collect();
    let fits = records
        .iter()
        .all(|r| r.name.len() <= usize::from(u16::MAX) && r.path.len() <= usize::from(u16::MAX));
    if fits {
        assert_eq!(parse_records(&encoded), records);
    }
    format!("records={}", records.len().min(4))
}

fn encode_record(record: &StateRecord) -> Vec<u8> {
    let mut out = RECORD_MAGIC.to_vec();
    out.extend_from_slice(&record.version.to_le_bytes());
    out.extend_from_slice(&(record.name.len() as u16).to_le_bytes());
    out.extend_from_slice(&(record.path.len() as u16).to_le_bytes());
    out.extend_from_slice(&record.layout.to_le_bytes());
    out.extend_from_slice(record.name.as_bytes());
    out.extend_from_slice(record.path.as_bytes());
    out
}
