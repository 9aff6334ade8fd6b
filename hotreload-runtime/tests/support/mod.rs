//! What several runtime tests build: manifests and patch files for this test process's build.

#![allow(dead_code)]

pub mod entry;
pub mod symbols;

use hotreload_runtime::wire::patch_file::{BuildIdentity, Manifest, PatchFile};

/// A manifest for the build `build_id`, carrying nothing.
pub fn manifest(build_id: &str) -> Manifest {
    Manifest {
        base: BuildIdentity {
            build_id: build_id.to_owned(),
            rustc: "rustc 1.95.0".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            profile: "dev".into(),
            cargo_lock_sha256: "00".into(),
        },
        crates: vec![],
        hot_functions: vec![],
        changed_functions: vec![],
        redirects: vec![],
        entry_redirects: vec![],
        states: vec![],
        library_sha256: String::new(),
        library_len: 0,
        created_unix: 0,
    }
}

/// A patch for this process's build whose "library" is `library` (not a shared object).
pub fn patch_for_this_build(library: &[u8]) -> PatchFile {
    let build_id = hotreload_runtime::build_id().unwrap();
    PatchFile::new(manifest(build_id), library.to_vec())
}
