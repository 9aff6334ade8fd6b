//! Signed patches: a signature present is verified; once keys are trusted, only patches signed by
//! one of them pass. All before the library is opened (these libraries are not even ELF files).

use ed25519_dalek::{Signer as _, SigningKey};
mod support;

use hotreload_runtime::wire::patch_file::{hex, PatchFile, PatchSignature};
use hotreload_runtime::{patch, trust_public_key, Error};

fn unsigned_patch(name: &str) -> PatchFile {
    support::patch_for_this_build(format!("not a library: {name}").as_bytes())
}

fn signed(mut patch: PatchFile, key: &SigningKey) -> PatchFile {
    patch.signature = Some(PatchSignature {
        public_key: key.verifying_key().to_bytes(),
        signature: key.sign(&patch.signed_message()).to_bytes(),
    });
    patch
}

fn check(patch: &PatchFile, name: &str) -> Result<(), Error> {
    let path = std::env::temp_dir().join(format!(
        "hotreload-signing-{}-{name}.hotpatch",
        std::process::id()
    ));
    std::fs::write(&path, patch.to_bytes()).unwrap();
    let result = patch::check(&path).map(|report| assert!(report.dry_run));
    let _ = std::fs::remove_file(&path);
    result
}

#[test]
fn signatures_are_verified_and_only_trusted_keys_pass_once_keys_are_trusted() {
    let trusted = SigningKey::from_bytes(&[1; 32]);
    let stranger = SigningKey::from_bytes(&[2; 32]);

    // Nothing trusted yet: unsigned patches pass; a signature present must verify.
    check(&unsigned_patch("a"), "unsigned-open").unwrap();
    check(&signed(unsigned_patch("b"), &stranger), "signed-open").unwrap();
    let mut forged = signed(unsigned_patch("c"), &stranger);
    forged.signature.as_mut().unwrap().signature[0] ^= 1;
    let error = check(&forged, "forged").unwrap_err();
    assert!(matches!(error, Error::BadSignature { .. }), "{error}");
    assert_eq!(error.step(), "authenticity");
    // A signature moved onto another patch does not verify either.
    let mut moved = unsigned_patch("d");
    moved.signature = signed(unsigned_patch("e"), &trusted).signature;
    assert!(matches!(
        check(&moved, "moved").unwrap_err(),
        Error::BadSignature { .. }
    ));

    trust_public_key(&hex(trusted.verifying_key().as_bytes())).unwrap();

    let error = check(&unsigned_patch("f"), "unsigned").unwrap_err();
    assert!(matches!(error, Error::Unsigned { .. }), "{error}");
    assert!(error.to_string().contains("--sign"), "{error}");
    let error = check(&signed(unsigned_patch("g"), &stranger), "stranger").unwrap_err();
    assert!(matches!(error, Error::UntrustedKey { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains(&hex(stranger.verifying_key().as_bytes())),
        "{error}"
    );
    check(&signed(unsigned_patch("h"), &trusted), "trusted").unwrap();
}
