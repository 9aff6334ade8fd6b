//! Which patches this process accepts: when trusted ed25519 keys are configured
//! (`HOTRELOAD_TRUSTED_KEYS`, or [`trust_public_key`](crate::trust_public_key)), only patches
//! signed by one of them. A signature present is always verified. All of it happens before the
//! library is opened.

use std::sync::Mutex;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::error::Error;
use crate::sync::lock;
use crate::wire::patch_file::{hex, PatchFile};

/// The trusted keys, or the malformed one that makes every patch refused.
static TRUSTED: Mutex<Result<Vec<[u8; 32]>, String>> = Mutex::new(Ok(Vec::new()));

/// Trusts a public key given as 64 hex digits: from now on only patches signed by a trusted key
/// are applied.
pub fn trust_public_key(key_hex: &str) -> Result<(), Error> {
    let mut trusted = lock(&TRUSTED);
    match parse_key(key_hex) {
        Some(key) => {
            if let Ok(keys) = trusted.as_mut() {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            Ok(())
        }
        None => {
            *trusted = Err(key_hex.to_owned());
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
        Ok(keys) => keys,
        Err(key) => return Err(Error::TrustedKey { key: key.clone() }),
    };
    if keys.is_empty() {
        return Ok(());
    }
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
