use super::*;

fn sample() -> PatchFile {
    PatchFile::new(
        Manifest {
            base: BuildIdentity {
                build_id: "abcd".into(),
                rustc: "1.95.0".into(),
                target: "x86_64-unknown-linux-gnu".into(),
                profile: "dev".into(),
                cargo_lock_sha256: "00".into(),
            },
            crates: vec!["logic".into()],
            hot_functions: vec![],
            changed_functions: vec!["logic::step".into()],
            redirects: vec![],
            entry_redirects: vec![],
            states: vec![],
            library_sha256: String::new(),
            library_len: 0,
            created_unix: 0,
        },
        b"\x7fELF library bytes".to_vec(),
    )
}

#[test]
fn signatures_round_trip() {
    let mut patch = sample();
    patch.signature = Some(PatchSignature {
        public_key: [7; 32],
        signature: [9; 64],
    });
    let parsed = PatchFile::parse(&patch.to_bytes()).unwrap();
    assert_eq!(parsed.signature, patch.signature);
    assert_eq!(parsed.id, patch.id);
}

#[test]
fn round_trips() {
    let patch = sample();
    let parsed = PatchFile::parse(&patch.to_bytes()).unwrap();
    assert_eq!(parsed.manifest, patch.manifest);
    assert_eq!(parsed.id, patch.id);
    assert_eq!(parsed.library, patch.library);
}

#[test]
fn refuses_truncated_corrupt_and_foreign_files() {
    let bytes = sample().to_bytes();
    for cut in [0, 5, 10, 14, 40, bytes.len() - 1] {
        let error = PatchFile::parse(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(
                error,
                PatchFileError::Truncated { .. } | PatchFileError::NotAPatch
            ) || matches!(error, PatchFileError::Manifest(_)),
            "cut at {cut}: {error}"
        );
    }
    let mut corrupt = bytes.clone();
    // The last byte of the library (the 4 after it say the patch is unsigned).
    let last_of_library = corrupt.len() - 5;
    corrupt[last_of_library] ^= 1;
    assert!(matches!(
        PatchFile::parse(&corrupt),
        Err(PatchFileError::Integrity { .. })
    ));
    let mut edited = bytes.clone();
    let at = 16 + 32 + edited[48..].iter().position(|&b| b == b'9').unwrap_or(0);
    edited[at] = b'8';
    assert!(
        matches!(
            PatchFile::parse(&edited),
            Err(PatchFileError::ManifestIntegrity { .. })
        ),
        "an edited manifest is refused"
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        PatchFile::parse(&longer),
        Err(PatchFileError::TrailingBytes(1))
    ));
    assert!(matches!(
        PatchFile::parse(b"GARBAGE!...."),
        Err(PatchFileError::NotAPatch)
    ));
}

/// A manifest length over the cap is named as such, not as a truncated file (the file may
/// well be that long).
#[test]
fn a_manifest_length_over_the_cap_is_refused_as_corrupt() {
    let too_long = MAX_MANIFEST_LEN + 1;
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&too_long.to_le_bytes());
    bytes.resize(bytes.len() + too_long as usize + 4, b' ');
    let error = PatchFile::parse(&bytes).unwrap_err();
    assert!(
        matches!(error, PatchFileError::ManifestTooLarge(len) if len == too_long),
        "{error}"
    );
    assert!(error.to_string().contains("corrupt"), "{error}");
}
