//! A malformed trusted key is refused, and until it is fixed every patch is refused: a process
//! meant to accept only signed patches never falls back to accepting any.

use hotreload_runtime::patch_file::{BuildIdentity, Manifest, PatchFile};
use hotreload_runtime::{patch, trust_public_key, Error};

#[test]
fn a_malformed_trusted_key_makes_every_patch_refused() {
    let error = trust_public_key("not-a-key").unwrap_err();
    assert!(matches!(error, Error::TrustedKey { .. }), "{error}");
    assert!(error.to_string().contains("not-a-key"), "{error}");

    let manifest = Manifest {
        base: BuildIdentity {
            build_id: hotreload_runtime::build_id().unwrap().to_owned(),
            rustc: "rustc".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            profile: "dev".into(),
            cargo_lock_sha256: "00".into(),
        },
        crates: vec![],
        hot_functions: vec![],
        changed_functions: vec![],
        redirects: vec![],
        library_sha256: String::new(),
        library_len: 0,
        created_unix: 0,
    };
    let patch = PatchFile::new(manifest, b"not a library".to_vec());
    let path =
        std::env::temp_dir().join(format!("hotreload-trust-{}.hotpatch", std::process::id()));
    std::fs::write(&path, patch.to_bytes()).unwrap();
    let error = patch::check(&path).unwrap_err();
    let _ = std::fs::remove_file(&path);
    assert!(matches!(error, Error::TrustedKey { .. }), "{error}");
    assert_eq!(error.step(), "authenticity");
}
