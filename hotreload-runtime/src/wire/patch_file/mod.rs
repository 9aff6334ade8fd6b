//! The patch file: a manifest and the patch library, checked before anything runs.
//!
//! Layout: the magic `HOTPATCH`, the format version (u32 LE), the manifest's length (u32 LE), the
//! manifest's sha256 (32 bytes), the manifest (JSON), then the library (exactly
//! `manifest.library_len` bytes), then the signature block's length (u32 LE, 0 when unsigned) and
//! the block: the signer's ed25519 public key (32 bytes) and its signature (64 bytes) of
//! [`PatchFile::signed_message`]. The patch id is the sha256 of the manifest bytes, which carry the
//! library's sha256: it names the whole content, and signing it signs the library too. Both hashes
//! are checked on reading, so neither the manifest nor the library can be edited unnoticed.
//! Formats 1 and 2 had no hash of the manifest (an edited manifest read as another patch) and are
//! refused.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// First bytes of every patch file.
pub const MAGIC: &[u8; 8] = b"HOTPATCH";
/// The format this runtime writes and reads.
pub const FORMAT_VERSION: u32 = 3;
/// Length of a signature block: a public key and a signature.
const SIGNATURE_BLOCK_LEN: u32 = 32 + 64;
/// Refuse manifests larger than this: a corrupt length must not make us allocate gigabytes.
const MAX_MANIFEST_LEN: u32 = 16 << 20;

/// What identifies a build: a patch applies only to the build it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildIdentity {
    /// The GNU build id of the executable, hex.
    pub build_id: String,
    /// `rustc -vV`'s `release` and `commit-hash`.
    pub rustc: String,
    /// The target triple.
    pub target: String,
    /// The cargo profile (`dev`, `release`, ...).
    pub profile: String,
    /// sha256 of Cargo.lock, hex.
    pub cargo_lock_sha256: String,
}

/// A hot function the patch carries, as found in the patch's symbols.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchedHotFunction {
    /// Demangled path of the function's original code, without the fingerprint suffix.
    pub path: String,
    /// Fingerprint of its slot type.
    pub fingerprint: u64,
}

/// A `#[hot_state]` type of the patch: its values are migrated to this version when it is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchedState {
    /// The name values are kept under.
    pub name: String,
    /// Its version in the patch.
    pub version: u32,
    /// Its layout fingerprint in the patch.
    pub layout: u64,
}

/// A private static of the host that the patch reaches through a cell: after loading the library,
/// the runtime writes the host's address of the static into the cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticRedirect {
    /// The static's demangled name, for messages.
    pub name: String,
    /// Offset of the cell from the library's load base.
    pub cell_offset: u64,
    /// Offset of the static from the executable's load base; for a thread-local, the offset in
    /// the executable's thread-local block that the cell's `tls_index` names.
    pub host_offset: u64,
    /// A thread-local's cell: a `tls_index` of the executable's TLS module and `host_offset`.
    #[serde(default)]
    pub thread_local: bool,
    /// The earlier patch (by id) whose library holds the static, when an earlier patch introduced
    /// it; `host_offset` is then from that library's load base. `None`: the executable.
    #[serde(default)]
    pub module: Option<String>,
}

/// A function of the running program whose entry is redirected to the patch's new code (issue
/// 14): its first five bytes become a jump to a slot near it, and the slot jumps into the library.
/// Calls already running finish on the old code; every later call, through any caller, function
/// pointer or vtable, runs the new code. `#[hot]` functions keep their table and are never listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRedirect {
    /// The function's demangled name, for messages and reports.
    pub name: String,
    /// Offset of the old function's entry from the executable's load base.
    pub host_offset: u64,
    /// The old function's size in bytes as the executable's symbol table gives it (0 when
    /// unknown); the jump needs five bytes of body or padding before the next symbol.
    pub host_size: u64,
    /// Offset of the new function's entry from the library's load base.
    pub patch_offset: u64,
}

/// What a patch is and what it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The build the patch was made against.
    pub base: BuildIdentity,
    /// The crates rebuilt into the library.
    pub crates: Vec<String>,
    /// The hot functions the library carries.
    pub hot_functions: Vec<PatchedHotFunction>,
    /// Demangled names of the functions whose code differs from the base build.
    pub changed_functions: Vec<String>,
    /// Private statics of the host reached through cells the runtime fills.
    #[serde(default)]
    pub redirects: Vec<StaticRedirect>,
    /// Functions of the running program (not `#[hot]`) whose entries jump to the library's code.
    /// Cumulative like everything else: every function that differs from the base build.
    #[serde(default)]
    pub entry_redirects: Vec<EntryRedirect>,
    /// The `#[hot_state]` types of the rebuilt crates, as the library has them.
    #[serde(default)]
    pub states: Vec<PatchedState>,
    /// sha256 of the library, hex.
    pub library_sha256: String,
    /// Length of the library in bytes.
    pub library_len: u64,
    /// When the patch was built, seconds since the Unix epoch.
    pub created_unix: u64,
}

/// Who signed a patch, and the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct PatchSignature {
    /// The signer's ed25519 public key.
    pub public_key: [u8; 32],
    /// The signature of [`PatchFile::signed_message`].
    pub signature: [u8; 64],
}

impl fmt::Debug for PatchSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PatchSignature(by {})", hex(&self.public_key))
    }
}

/// A patch file read and checked for integrity: its library matches its manifest.
#[derive(Clone)]
pub struct PatchFile {
    /// The manifest.
    pub manifest: Manifest,
    /// sha256 of the manifest bytes, hex: the patch's id.
    pub id: String,
    /// The library's bytes.
    pub library: Vec<u8>,
    /// The signature, if the patch was signed.
    pub signature: Option<PatchSignature>,
}

impl fmt::Debug for PatchFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatchFile")
            .field("id", &self.id)
            .field("manifest", &self.manifest)
            .field("library_len", &self.library.len())
            .finish()
    }
}

/// Why bytes are not a usable patch file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PatchFileError {
    /// Not a patch file at all.
    #[error("not a hotreload patch file (it does not start with `HOTPATCH`)")]
    NotAPatch,
    /// Written by another version of the format.
    #[error("patch file format {found} is not supported by this runtime (it reads format {FORMAT_VERSION}); rebuild the patch with the matching cargo-hotpatch")]
    UnsupportedFormat {
        /// The format the file says it has.
        found: u32,
    },
    /// Shorter than its headers say.
    #[error("the patch file is truncated: {what} needs {needed} bytes but only {available} remain; copy the file again")]
    Truncated {
        /// Which part is cut.
        what: &'static str,
        /// Bytes that part needs.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// The manifest's length field is over [`MAX_MANIFEST_LEN`]: no manifest is that large.
    #[error("the patch file says its manifest is {0} bytes long, more than the {MAX_MANIFEST_LEN} a manifest may have; the file is corrupt")]
    ManifestTooLarge(u32),
    /// Longer than its headers say.
    #[error("the patch file has {0} unexpected bytes after the library; it is corrupt")]
    TrailingBytes(u64),
    /// The manifest is not valid JSON of the right shape.
    #[error("the patch manifest is corrupt: {0}")]
    Manifest(#[source] serde_json::Error),
    /// The signature block has the wrong length.
    #[error("the patch's signature block is {0} bytes long, not {SIGNATURE_BLOCK_LEN}; the file is corrupt")]
    SignatureBlock(u32),
    /// The manifest's bytes do not match the hash written before them.
    #[error("the patch manifest was changed after the patch was built: its sha256 is {found} but the file says {expected}; rebuild the patch with `cargo hotpatch build`")]
    ManifestIntegrity {
        /// From the file's header.
        expected: String,
        /// Of the manifest found.
        found: String,
    },
    /// The library's bytes do not match the manifest's hash.
    #[error(
        "the patch library is corrupt: its sha256 is {found} but the manifest says {expected}"
    )]
    Integrity {
        /// From the manifest.
        expected: String,
        /// Of the bytes found.
        found: String,
    },
}

impl PatchFile {
    /// Builds a patch file from a manifest (whose hash and length fields are filled here) and a library.
    pub fn new(mut manifest: Manifest, library: Vec<u8>) -> Self {
        manifest.library_sha256 = sha256_hex(&library);
        manifest.library_len = library.len() as u64;
        let id = sha256_hex(&manifest_bytes(&manifest));
        PatchFile {
            manifest,
            id,
            library,
            signature: None,
        }
    }

    /// What a signature of this patch signs: a domain tag and the patch id, which covers the
    /// manifest and, through its hash, the library.
    pub fn signed_message(&self) -> Vec<u8> {
        format!("hotreload patch v1 {}", self.id).into_bytes()
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let manifest = manifest_bytes(&self.manifest);
        let mut out = Vec::with_capacity(16 + manifest.len() + self.library.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
        out.extend_from_slice(&Sha256::digest(&manifest));
        out.extend_from_slice(&manifest);
        out.extend_from_slice(&self.library);
        match &self.signature {
            Some(signed) => {
                out.extend_from_slice(&SIGNATURE_BLOCK_LEN.to_le_bytes());
                out.extend_from_slice(&signed.public_key);
                out.extend_from_slice(&signed.signature);
            }
            None => out.extend_from_slice(&0u32.to_le_bytes()),
        }
        out
    }

    /// Reads and checks a patch file: format, lengths, manifest, and the library's sha256.
    pub fn parse(bytes: &[u8]) -> Result<Self, PatchFileError> {
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or(PatchFileError::NotAPatch)?;
        let (version, rest) = take_u32(rest, "the format version")?;
        if version != FORMAT_VERSION {
            return Err(PatchFileError::UnsupportedFormat { found: version });
        }
        let (manifest_len, rest) = take_u32(rest, "the manifest length")?;
        if manifest_len > MAX_MANIFEST_LEN {
            return Err(PatchFileError::ManifestTooLarge(manifest_len));
        }
        let (manifest_hash, rest) = take(rest, 32, "the manifest's hash")?;
        let (manifest_raw, rest) = take(rest, manifest_len as usize, "the manifest")?;
        let found = sha256_hex(manifest_raw);
        if found != hex(manifest_hash) {
            return Err(PatchFileError::ManifestIntegrity {
                expected: hex(manifest_hash),
                found,
            });
        }
        let manifest: Manifest =
            serde_json::from_slice(manifest_raw).map_err(PatchFileError::Manifest)?;
        let library_len = usize::try_from(manifest.library_len).unwrap_or(usize::MAX);
        let (library, mut rest) = take(rest, library_len, "the library")?;
        let mut signature = None;
        let (block_len, after) = take_u32(rest, "the signature block length")?;
        match block_len {
            0 => rest = after,
            SIGNATURE_BLOCK_LEN => {
                let (block, after) = take(after, block_len as usize, "the signature block")?;
                signature = Some(PatchSignature {
                    public_key: block[..32].try_into().expect("32 bytes"),
                    signature: block[32..].try_into().expect("64 bytes"),
                });
                rest = after;
            }
            other => return Err(PatchFileError::SignatureBlock(other)),
        }
        if !rest.is_empty() {
            return Err(PatchFileError::TrailingBytes(rest.len() as u64));
        }
        let found = sha256_hex(library);
        if found != manifest.library_sha256 {
            return Err(PatchFileError::Integrity {
                expected: manifest.library_sha256,
                found,
            });
        }
        Ok(PatchFile {
            id: hex(manifest_hash),
            manifest,
            library: library.to_vec(),
            signature,
        })
    }

    /// The first 12 hex digits of the id, as shown to people.
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }
}

fn manifest_bytes(manifest: &Manifest) -> Vec<u8> {
    serde_json::to_vec(manifest).expect("a manifest always serialises")
}

fn take<'a>(
    bytes: &'a [u8],
    len: usize,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), PatchFileError> {
    if bytes.len() < len {
        return Err(PatchFileError::Truncated {
            what,
            needed: len as u64,
            available: bytes.len() as u64,
        });
    }
    Ok(bytes.split_at(len))
}

fn take_u32<'a>(bytes: &'a [u8], what: &'static str) -> Result<(u32, &'a [u8]), PatchFileError> {
    let (head, rest) = take(bytes, 4, what)?;
    let value = u32::from_le_bytes(head.try_into().expect("four bytes"));
    Ok((value, rest))
}

/// The first 12 hex digits of an id (a patch id, a content hash), as shown to people.
pub fn short_id(id: &str) -> &str {
    &id[..12.min(id.len())]
}

/// sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests;
