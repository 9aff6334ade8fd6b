//! A real patch file whose manifest lists an entry redirect, through the runtime's apply path:
//! refused unless allowed, predicted by `check`, applied (the library's code runs for every later
//! call of a plain function of this executable), reported by `status`, rolled back to the
//! executable's own bytes. The patch library is a small cdylib compiled once by `rustc`.

// Entry redirection exists on x86-64 Linux only.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

mod support;

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;

use hotreload_runtime::entry::EntryError;
use hotreload_runtime::patch::{self, ApplyOptions};
use hotreload_runtime::wire::patch_file::{EntryRedirect, PatchFile};
use hotreload_runtime::{hot, Error};
use support::symbols::{executable_base, exported_offset, function_size};

#[inline(never)]
extern "C" fn quote(x: u64) -> u64 {
    black_box(x) + 1
}

const LIBRARY_SOURCE: &str = r#"
#[no_mangle]
pub extern "C" fn patched_quote(x: u64) -> u64 {
    std::hint::black_box(x) * 1000 + 7
}
"#;

/// The patch library, compiled once with the `rustc` that built this test.
fn library() -> Vec<u8> {
    static LIBRARY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    LIBRARY.get_or_init(build_library).clone()
}

fn build_library() -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("entry_apply");
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("patched_quote.rs");
    std::fs::write(&source, LIBRARY_SOURCE).unwrap();
    let output = dir.join("libpatched_quote.so");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let status = Command::new(rustc)
        .args([
            "--crate-type",
            "cdylib",
            "--edition",
            "2021",
            "-C",
            "opt-level=1",
            "-o",
        ])
        .arg(&output)
        .arg(&source)
        .status()
        .expect("rustc runs");
    assert!(status.success(), "the patch library compiles");
    std::fs::read(&output).unwrap()
}

/// A patch file redirecting the function at `entry` to the library's `patched_quote`.
fn patch_file(name: &str, entry: usize) -> PathBuf {
    let library = library();
    let mut manifest = support::manifest(hotreload_runtime::build_id().unwrap());
    manifest.entry_redirects = vec![EntryRedirect {
        name: name.to_owned(),
        host_offset: (entry - executable_base()) as u64,
        host_size: function_size(entry) as u64,
        patch_offset: exported_offset(&library, "patched_quote"),
    }];
    let file = format!("entry_apply/{}.hotpatch", name.replace("::", "_"));
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(file);
    std::fs::write(&path, PatchFile::new(manifest, library).to_bytes()).unwrap();
    path
}

#[test]
fn a_patch_redirects_a_plain_function_through_apply_and_rollback() {
    let path = patch_file("entry_apply::quote", quote as *const () as usize);

    let refused = patch::apply(&path).unwrap_err();
    assert!(
        matches!(
            refused,
            Error::EntryRedirectsNotAllowed { functions: 1, .. }
        ),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("--allow-entry-redirects"),
        "{refused}"
    );
    assert_eq!(quote(1), 2, "a refused patch changes nothing");

    let checked = patch::check(&path).unwrap();
    let predicted = checked.entries.expect("check reports the entry redirects");
    assert_eq!((predicted.redirected, predicted.written), (1, 1));
    assert!(predicted.expected_pause_us.is_some());

    let allowed = ApplyOptions {
        allow_entry_redirects: true,
    };
    let applied = patch::apply_with(&path, allowed).unwrap();
    let entries = applied
        .entries
        .expect("the apply reports the entry redirects");
    assert_eq!((entries.written, entries.redirected), (1, 1));
    assert!(entries.pause_us.is_some());
    assert_eq!(quote(1), 1007, "later calls run the patch library's code");
    let status = patch::status();
    assert_eq!(status.entries.redirected, 1);
    assert!(status.entries.last_pause_us.is_some());
    let history = status.history.last().unwrap();
    assert_eq!(history.entries.as_ref().map(|e| e.written), Some(1));

    let rolled_back = patch::rollback().unwrap();
    assert_eq!(rolled_back.entries.map(|e| e.restored), Some(1));
    assert_eq!(quote(1), 2, "the executable's own bytes are back");
    assert_eq!(patch::status().entries.redirected, 0);

    patch::apply_with(&path, allowed).unwrap();
    assert_eq!(
        quote(2),
        2007,
        "applied again from the library already loaded"
    );
    patch::rollback().unwrap();
    assert_eq!(quote(2), 3);
}

#[hot]
fn hot_quote(x: u64) -> u64 {
    x + 5
}

#[test]
fn a_patch_never_redirects_the_code_of_a_hot_function() {
    let hot = hotreload_runtime::function("entry_apply::hot_quote").unwrap();
    let path = patch_file("entry_apply::hot_quote", hot.original() as usize);
    let allowed = ApplyOptions {
        allow_entry_redirects: true,
    };
    let error = patch::apply_with(&path, allowed).unwrap_err();
    assert!(
        matches!(&error, Error::EntryRedirect { source: EntryError::HotFunction { key, .. }, .. } if key == "entry_apply::hot_quote"),
        "{error}"
    );
    assert_eq!(hot_quote(1), 6, "the hot function keeps its table path");
}
