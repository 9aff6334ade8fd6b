//! Signing patches: `cargo hotpatch keygen` makes a key pair, `build --sign KEY` signs a patch with
//! it, and a runtime configured with the public key (`HOTRELOAD_TRUSTED_KEYS`) applies only
//! patches it signed.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use ed25519_dalek::{Signer as _, SigningKey};
use hotreload_runtime::wire::patch_file::{hex, PatchFile, PatchSignature};

use crate::shell::status;

/// Writes a new secret key to `output` (mode 0600, hex) and its public key to `output.pub`.
pub fn keygen(output: &Path) -> anyhow::Result<()> {
    if output.exists() {
        bail!(
            "{} exists; keygen does not overwrite a key (move it away first)",
            output.display()
        );
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    let key = SigningKey::from_bytes(&seed);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(output)
        .with_context(|| format!("creating {}", output.display()))?;
    writeln!(file, "{}", hex(&seed)).with_context(|| format!("writing {}", output.display()))?;
    let public = hex(key.verifying_key().as_bytes());
    let public_path = public_path(output);
    std::fs::write(&public_path, format!("{public}\n"))
        .with_context(|| format!("writing {}", public_path.display()))?;
    status(
        "Created",
        format!(
            "secret key {} and public key {}",
            output.display(),
            public_path.display()
        ),
    );
    println!("{public}");
    eprintln!("Give the public key to the processes that should accept these patches: HOTRELOAD_TRUSTED_KEYS={public}");
    Ok(())
}

/// Signs `patch` with the secret key in `key_file`.
pub fn sign(patch: &mut PatchFile, key_file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(key_file)
        .with_context(|| format!("reading the signing key {}", key_file.display()))?;
    let seed = parse_hex32(text.trim()).with_context(|| {
        format!(
            "{} is not a key made by `cargo hotpatch keygen` (64 hex digits)",
            key_file.display()
        )
    })?;
    let key = SigningKey::from_bytes(&seed);
    let signature = key.sign(&patch.signed_message());
    patch.signature = Some(PatchSignature {
        public_key: key.verifying_key().to_bytes(),
        signature: signature.to_bytes(),
    });
    Ok(())
}

fn public_path(secret: &Path) -> PathBuf {
    let mut name = secret.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (index, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}
