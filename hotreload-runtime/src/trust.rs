//! Which patches this process accepts: when trusted ed25519 keys are configured
//! (`HOTRELOAD_TRUSTED_KEYS`, or [`trust_public_key`](crate::trust_public_key)), only patches
//! signed by one of them. `HOTRELOAD_TRUSTED_KEYS` set but naming no key trusts no signer: every
//! patch is refused. A signature present is always verified. All of it happens before the
//! library is opened.

use std::sync::Mutex;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::error::Error;
use crate::sync::lock;
use crate::wire::patch_file::{hex, PatchFile};

/// Whose patches this process applies.
enum Trust {
    /// Nothing configured: any patch whose signature (if it has one) verifies.
    Anyone,
    /// Only patches signed by one of these keys; none when the configuration named no key.
    Keys(Vec<[u8; 32]>),
    /// A configured key is malformed: every patch is refused until it is fixed.
    Malformed(String),
}

static TRUSTED: Mutex<Trust> = Mutex::new(Trust::Anyone);

/// Trusts the keys `list` names (hex, separated by commas, spaces or newlines), as
/// `HOTRELOAD_TRUSTED_KEYS` gives them. Set means enforced: a list naming no key trusts no
/// signer, so every patch is refused. A malformed key is logged and refuses every patch.
pub(crate) fn trust_configured_keys(list: &str) {
    {
        let mut trusted = lock(&TRUSTED);
        if matches!(*trusted, Trust::Anyone) {
            *trusted = Trust::Keys(Vec::new());
        }
    }
    let keys: Vec<&str> = list
        .split([',', ' ', '\n', '\t', '\r'])
        .filter(|k| !k.trim().is_empty())
        .collect();
    if keys.is_empty() {
        tracing::error!("HOTRELOAD_TRUSTED_KEYS is set but names no key: every patch is refused");
    }
    for key in keys {
        if let Err(error) = trust_public_key(key) {
            tracing::error!(%error, "HOTRELOAD_TRUSTED_KEYS");
        }
    }
}

/// Trusts a public key given as 64 hex digits: from now on only patches signed by a trusted key
/// are applied.
pub fn trust_public_key(key_hex: &str) -> Result<(), Error> {
    let mut trusted = lock(&TRUSTED);
    match parse_key(key_hex) {
        Some(key) => {
            match &mut *trusted {
                Trust::Anyone => *trusted = Trust::Keys(vec![key]),
                Trust::Keys(keys) if !keys.contains(&key) => keys.push(key),
                Trust::Keys(_) | Trust::Malformed(_) => {}
            }
            Ok(())
        }
        None => {
            *trusted = Trust::Malformed(key_hex.to_owned());
            Err(Error::TrustedKey {
                key: key_hex.to_owned(),
            })
        }
    }
}

/// Refuses a patch whose signature does not verify, or that no trusted key signed when keys are
/// trusted.
pub(crate) fn check(patch: &PatchFile) -> Result<(), Error> {
    let short = patch.short_id().to_owned();
    if let Some(signed) = &patch.signature {
        let verified = VerifyingKey::from_bytes(&signed.public_key).is_ok_and(|key| {
            key.verify_strict(
                &patch.signed_message(),
                &Signature::from_bytes(&signed.signature),
            )
            .is_ok()
        });
        if !verified {
            return Err(Error::BadSignature { patch: short });
        }
    }
    let trusted = lock(&TRUSTED);
    let keys = match &*trusted {
        Trust::Anyone => return Ok(()),
        Trust::Keys(keys) if keys.is_empty() => return Err(Error::NoTrustedKey { patch: short }),
        Trust::Keys(keys) => keys,
        Trust::Malformed(key) => return Err(Error::TrustedKey { key: key.clone() }),
    };
    let list = || keys.iter().map(|k| hex(k)).collect::<Vec<_>>().join(", ");
    match &patch.signature {
        None => Err(Error::Unsigned {
            patch: short,
            trusted: list(),
        }),
        Some(signed) if !keys.contains(&signed.public_key) => Err(Error::UntrustedKey {
            patch: short,
            key: hex(&signed.public_key),
            trusted: list(),
        }),
        Some(_) => Ok(()),
    }
}

fn parse_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (index, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    VerifyingKey::from_bytes(&key).ok()?;
    Some(key)
}
