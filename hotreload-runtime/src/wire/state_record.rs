//! The `.hotreload_states` record: what `#[hot_state]` writes into each binary for every live
//! state type (built at compile time by [`record`]), and what `cargo hotpatch` reads back from the
//! binaries ([`parse_records`]) to compare versions when it builds a patch.

use serde::{Deserialize, Serialize};

/// Length of the `.hotreload_states` record of a type named `name` at `path`.
pub const fn record_len(name: &str, path: &str) -> usize {
    RECORD_HEADER_LEN + name.len() + path.len()
}

/// The `.hotreload_states` record: `HOTSTATE`, the version (u32 LE), the lengths of the name
/// and of the Rust path (u16 LE each), the layout fingerprint (u64 LE), the name, the path.
pub const fn record<const N: usize>(name: &str, path: &str, version: u32, layout: u64) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = copy(&mut out, 0, RECORD_MAGIC);
    at = copy(&mut out, at, &version.to_le_bytes());
    at = copy(&mut out, at, &(name.len() as u16).to_le_bytes());
    at = copy(&mut out, at, &(path.len() as u16).to_le_bytes());
    at = copy(&mut out, at, &layout.to_le_bytes());
    at = copy(&mut out, at, name.as_bytes());
    copy(&mut out, at, path.as_bytes());
    out
}

const fn copy<const N: usize>(out: &mut [u8; N], at: usize, bytes: &[u8]) -> usize {
    let mut i = 0;
    while i < bytes.len() {
        out[at + i] = bytes[i];
        i += 1;
    }
    at + bytes.len()
}

/// First bytes of a `.hotreload_states` record.
pub const RECORD_MAGIC: &[u8; 8] = b"HOTSTATE";
/// Bytes before the name in a record.
pub const RECORD_HEADER_LEN: usize = 24;

/// A `.hotreload_states` record, as `cargo hotpatch` reads them from binaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// The name values are kept under.
    pub name: String,
    /// The type's Rust path (`crate::module::Type`), as debug information names it.
    pub path: String,
    /// The version.
    pub version: u32,
    /// The layout fingerprint.
    pub layout: u64,
}

/// Reads the records of a `.hotreload_states` section.
pub fn parse_records(section: &[u8]) -> Vec<StateRecord> {
    let mut records = Vec::new();
    let mut at = 0;
    while at + RECORD_HEADER_LEN <= section.len() {
        if &section[at..at + 8] != RECORD_MAGIC {
            at += 1;
            continue;
        }
        let header = &section[at..at + RECORD_HEADER_LEN];
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        let name_len = usize::from(u16::from_le_bytes([header[12], header[13]]));
        let path_len = usize::from(u16::from_le_bytes([header[14], header[15]]));
        let mut layout = [0u8; 8];
        layout.copy_from_slice(&header[16..24]);
        let start = at + RECORD_HEADER_LEN;
        let (Some(name), Some(path)) = (
            section.get(start..start + name_len),
            section.get(start + name_len..start + name_len + path_len),
        ) else {
            break;
        };
        records.push(StateRecord {
            name: String::from_utf8_lossy(name).into_owned(),
            path: String::from_utf8_lossy(path).into_owned(),
            version,
            layout: u64::from_le_bytes(layout),
        });
        at = start + name_len + path_len;
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_between_other_bytes() {
        const A: [u8; record_len("app::Session", "app::s::Session")] =
            record("app::Session", "app::s::Session", 3, 0xdead_beef);
        const B: [u8; record_len("x", "y")] = record("x", "y", 1, 7);
        let mut section = vec![0u8; 5];
        section.extend_from_slice(&A);
        section.extend_from_slice(&B);
        section.extend_from_slice(b"HOTST");
        let records = parse_records(&section);
        assert_eq!(
            records,
            vec![
                StateRecord {
                    name: "app::Session".into(),
                    path: "app::s::Session".into(),
                    version: 3,
                    layout: 0xdead_beef
                },
                StateRecord {
                    name: "x".into(),
                    path: "y".into(),
                    version: 1,
                    layout: 7
                },
            ]
        );
    }
}
