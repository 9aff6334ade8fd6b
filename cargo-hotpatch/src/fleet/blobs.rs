//! Patch files stored in etcd, content-addressed by their SHA-256, in chunks under etcd's
//! request limit (1.5 MiB by default); the hash is checked again after reassembly.

use anyhow::{bail, Context as _};
use sha2::{Digest as _, Sha256};

use super::etcd::Etcd;
use super::keys::{decode, encode, BlobMeta, Keys};

/// The largest chunk: well under etcd's default request limit of 1.5 MiB with the key and
/// framing. `HOTPATCH_FLEET_CHUNK_BYTES` makes it smaller (tests store a patch in many chunks).
const CHUNK_BYTES: usize = 1024 * 1024;

fn chunk_bytes() -> usize {
    std::env::var("HOTPATCH_FLEET_CHUNK_BYTES")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(CHUNK_BYTES)
        .min(CHUNK_BYTES)
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Stores `bytes` (unless an intact copy is there already: a damaged one is replaced); returns
/// its hash. The chunks go first and the meta record last, so a reader that finds the meta finds
/// every chunk.
pub fn store(etcd: &Etcd, keys: &Keys, bytes: &[u8]) -> anyhow::Result<String> {
    let sha256 = sha256_hex(bytes);
    if etcd.get(&keys.blob_meta(&sha256))?.is_some() && fetch(etcd, keys, &sha256).is_ok() {
        return Ok(sha256);
    }
    let chunks: Vec<&[u8]> = bytes.chunks(chunk_bytes()).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        etcd.put(&keys.blob_chunk(&sha256, index), chunk.to_vec(), None)?;
    }
    let meta = BlobMeta {
        size: bytes.len(),
        chunks: chunks.len(),
    };
    etcd.put(&keys.blob_meta(&sha256), encode(&meta), None)?;
    Ok(sha256)
}

/// The stored file whose hash is `sha256`, reassembled and checked.
pub fn fetch(etcd: &Etcd, keys: &Keys, sha256: &str) -> anyhow::Result<Vec<u8>> {
    let meta_key = keys.blob_meta(sha256);
    let meta: BlobMeta = match etcd.get(&meta_key)? {
        Some(bytes) => decode(&meta_key, &bytes)?,
        None => bail!("the patch {sha256} is not stored in etcd (no {meta_key}): publish it again"),
    };
    let mut bytes = Vec::with_capacity(meta.size);
    for index in 0..meta.chunks {
        let key = keys.blob_chunk(sha256, index);
        let chunk = etcd
            .get(&key)?
            .with_context(|| format!("chunk {index} of patch {sha256} is missing ({key})"))?;
        bytes.extend_from_slice(&chunk);
    }
    check(sha256, &bytes)?;
    Ok(bytes)
}

/// Refuses `bytes` unless they are `meta`'s size and hash to `sha256`.
fn check(sha256: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let actual = sha256_hex(bytes);
    if actual != sha256 {
        bail!("the patch stored as {sha256} reassembles to {} bytes hashing to {actual}: etcd's copy is damaged or was altered; publish the patch again", bytes.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reassembled_blob_must_hash_to_its_name() {
        let bytes = b"HOTPATCH example".to_vec();
        let name = sha256_hex(&bytes);
        assert!(check(&name, &bytes).is_ok());
        let mut altered = bytes.clone();
        altered[0] ^= 1;
        let error = check(&name, &altered).unwrap_err().to_string();
        assert!(error.contains("damaged or was altered"), "{error}");
    }
}
