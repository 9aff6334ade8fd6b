//! A malformed trusted key is refused, and until it is fixed every patch is refused: a process
//! meant to accept only signed patches never falls back to accepting any.

mod support;

use hotreload_runtime::{patch, trust_public_key, Error};

#[test]
fn a_malformed_trusted_key_makes_every_patch_refused() {
    let error = trust_public_key("not-a-key").unwrap_err();
    assert!(matches!(error, Error::TrustedKey { .. }), "{error}");
    assert!(error.to_string().contains("not-a-key"), "{error}");

    let patch = support::patch_for_this_build(b"not a library");
    let path =
        std::env::temp_dir().join(format!("hotreload-trust-{}.hotpatch", std::process::id()));
    std::fs::write(&path, patch.to_bytes()).unwrap();
    let error = patch::check(&path).unwrap_err();
    let _ = std::fs::remove_file(&path);
    assert!(matches!(error, Error::TrustedKey { .. }), "{error}");
    assert_eq!(error.step(), "authenticity");
}
