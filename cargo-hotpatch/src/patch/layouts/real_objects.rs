//! Layouts read from libraries that rustc and the patch linker really built, at `-O3` with full
//! debug information in 16 codegen units: LLVM's cross-unit inlining leaves member types in other
//! units (`DW_FORM_ref_addr`), and the same type described in several.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::host::toolchain::{rustc_version, toolchain_lld_dir};
use crate::object::dwarf::{self, Layouts};
use crate::patch::layouts::type_layouts;
use crate::patch::link::Linker;

/// A crate whose types hold each other and the standard library's, used from functions in
/// several modules (so several codegen units) that inline into each other.
const SOURCE: &str = r#"
pub mod a {
    pub struct Session { pub name: String, pub items: Vec<crate::b::Item>, pub tier: crate::b::Tier }
    #[inline(never)]
    pub fn make(n: &str) -> Session {
        Session { name: n.to_string(), items: vec![crate::b::Item { id: 1, label: n.into() }], tier: crate::b::Tier::Gold }
    }
}
pub mod b {
    pub struct Item { pub id: u64, pub label: String }
    pub enum Tier { Gold, Silver(u8) }
    #[inline(never)]
    pub fn total(s: &crate::a::Session) -> usize {
        s.items.iter().map(|i| i.label.len()).sum::<usize>() + s.name.len()
    }
}
pub fn run(n: &str) -> usize { let s = a::make(n); b::total(&s) }
"#;

/// Compiles `source` as crate `demo` with `args` and links its objects into a library, as a
/// patch is linked; returns the library.
fn build(dir: &Path, name: &str, source: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    let file = out.join("lib.rs");
    std::fs::write(&file, source).unwrap();
    let status = Command::new("rustc")
        .args(["--crate-type=lib", "--crate-name=demo", "--emit=obj"])
        .args(["-C", "opt-level=3", "-C", "codegen-units=16"])
        .args(args)
        .arg("--out-dir")
        .arg(&out)
        .arg(&file)
        .status()
        .expect("running rustc");
    assert!(status.success(), "rustc failed");
    let objects: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "o"))
        .collect();
    let (_, host) = rustc_version(Path::new("rustc")).unwrap();
    let linker = Linker::for_base(toolchain_lld_dir(Path::new("rustc"), &host).as_deref());
    let library = out.join("demo.so");
    let shared_data = crate::object::read::object_symbols(&objects)
        .unwrap()
        .shared_data;
    linker
        .link_library(
            &objects,
            &shared_data,
            &BTreeSet::new(),
            &library,
            false,
            false,
        )
        .unwrap();
    library
}

fn layouts(library: &Path) -> Layouts {
    let crates = BTreeSet::from(["demo".to_owned()]);
    dwarf::read(library, &crates)
        .unwrap()
        .expect("the library has debug information")
}

#[test]
fn layouts_follow_references_across_units_and_do_not_depend_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let full = ["-C", "debuginfo=2"];
    let base = layouts(&build(dir.path(), "base", SOURCE, &full));
    assert_eq!(
        base.keys().map(String::as_str).collect::<Vec<_>>(),
        ["demo::a::Session", "demo::b::Item", "demo::b::Tier"]
    );
    // Every member names its type, wherever that type's entry sits: `Tier`'s discriminant is a
    // `u8` that LLVM leaves in another unit of this build.
    for (name, description) in &base {
        for member in description.split("(DW_TAG_member").skip(1) {
            let member = member.split('(').next().unwrap();
            assert!(
                member.contains(" DW_AT_type="),
                "a member of `{name}` without its type: {member}\n{description}"
            );
        }
    }
    let session = &base["demo::a::Session"];
    assert!(
        session.contains(
            "DW_AT_type=DW_TAG_structure_type:Vec<demo::b::Item, alloc::alloc::Global>:24"
        ),
        "{session}"
    );

    // Built as patches are (incrementally, so its units are arranged otherwise): the same.
    let incremental = dir.path().join("incremental");
    let incremental = format!("incremental={}", incremental.display());
    let patch_args = ["-C", "debuginfo=2", "-C", incremental.as_str()];
    let patch = layouts(&build(dir.path(), "patch", SOURCE, &patch_args));
    assert_eq!(type_layouts::changed(&base, &patch), Vec::<String>::new());
    assert_eq!(base, patch);

    // A field added to `Item`: that layout changed, and only that one.
    let grown = SOURCE
        .replace("pub label: String }", "pub label: String, pub extra: u8 }")
        .replace("label: n.into() }", "label: n.into(), extra: 0 }");
    let grown = layouts(&build(dir.path(), "grown", &grown, &patch_args));
    assert_eq!(type_layouts::changed(&base, &grown), ["demo::b::Item"]);
}

#[test]
fn debug_information_without_types_has_no_layouts() {
    let dir = tempfile::tempdir().unwrap();
    for level in ["line-tables-only", "1"] {
        let debuginfo = format!("debuginfo={level}");
        let library = build(dir.path(), level, SOURCE, &["-C", debuginfo.as_str()]);
        assert_eq!(layouts(&library), Layouts::new(), "debuginfo={level}");
    }
}
