//! End to end: `cargo hotpatch run` the fixture workspace `tests/fixtures/patchable`, then build,
//! apply, stack, inspect and roll back patches of the running app, and check what is refused.
//!
//! The fixture app and how its output is checked are described in the kit (`tests/kit/lib.rs`,
//! `tests/kit/ticks.rs`).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use hotreload_runtime::wire::patch_file::StaticRedirect;
use hotreload_tests::{
    locations, patch_id, pipe_without_reader, ticks::Tick, Fixture, PatchFile, Profile, RunningApp,
    StatusReport,
};

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn patches_apply_stack_roll_back_and_refuse_bad_input() {
    let fixture = Fixture::new(locations!(), Profile::Dev);
    let mut app = RunningApp::start(&fixture);
    // 1. The base build runs v1.
    the_base_runs_v1(&mut app);
    // 2. A patch of `logic` to v2: the version string and the panic message.
    let p2 = v2_is_checked_then_applied(&fixture, &mut app);
    // 3. Stacked patches: each build is cumulative against the base.
    let p3 = stacked_patch_applies(&fixture, &mut app, "v2", "v3");
    let p4 = stacked_patch_applies(&fixture, &mut app, "v3", "v4");
    // 4. Status.
    let status = fixture.status();
    let ids = [patch_id(&p2), patch_id(&p3), patch_id(&p4)];
    status_shows_each_function_s_patch(&status, &mut app, &ids);
    history_lists_the_commits(&fixture);
    a_closed_stdout_ends_history_quietly(&fixture);
    status_lists_the_patches_and_their_commits(&status, &ids, [&p2, &p3, &p4]);
    // 5. Rollbacks: v3, v2, then the base's v1.
    rollbacks_return_to_the_base(&fixture, &mut app);
    // 6a. Changes a running process cannot take are refused at build time.
    unpatchable_changes_are_refused(&fixture, &mut app);
    // 6b-6d. Damaged patches and patches for another build are refused, changing nothing.
    bad_patch_files_are_refused(&fixture, &mut app, &p2);
    // 6e. The same patch twice.
    the_same_patch_twice_changes_nothing(&fixture, &mut app, &p4);
    // 6f. An older patch applied under a newer one is refused, naming the one running.
    a_patch_under_a_newer_one_is_refused(&fixture, &mut app, &p2, &p4);
    // 7. Attribute macros below `#[hot]` are patched as they are above it.
    the_attribute_order_does_not_change_what_a_patch_does(&fixture, &mut app);
}

fn the_base_runs_v1(app: &mut RunningApp) {
    let v1 = app.wait_for_version("v1");
    let before_patch = app.expect_serving("v1", "before any patch");
    assert!(before_patch.steps > v1.steps);
    edition_is(&before_patch, "v1");
}

/// `Report::edition` is a hot method of a `#[hot]` block whose other method, `tagged` (an
/// `impl Into<String>` argument), stays ordinary: it printed `version@steps` through `tagged`.
fn edition_is(tick: &Tick, version: &str) {
    assert_eq!(
        tick.edition,
        Some(format!("{version}@{}", tick.steps)),
        "the hot method `Report::edition` runs {version}'s code: {tick:?}"
    );
}

/// The length of the library `patch` carries, which a process applying it keeps mapped for good;
/// asserts the library carries no debug information and no symbol table (the tool keeps both in
/// its work directory), only the dynamic symbols of its hot functions' code.
pub(crate) fn mapped_library_len(patch: &Path) -> usize {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
    let file = PatchFile::parse(&std::fs::read(patch).unwrap()).expect("a patch file");
    let library = object::File::parse(&*file.library).expect("the patch library is an object");
    let debug: Vec<&str> = library
        .sections()
        .filter_map(|section| section.name().ok())
        .filter(|name| name.starts_with(".debug_"))
        .collect();
    let hot_code = library
        .dynamic_symbols()
        .filter(|symbol| {
            symbol
                .name()
                .is_ok_and(|name| name.contains("__hot_original_"))
        })
        .count();
    assert!(
        debug.is_empty() && library.symbols().next().is_none() && hot_code > 0,
        "{} carries debug sections {debug:?} or a symbol table, or exports no hot function's \
         code ({hot_code} symbols)",
        patch.display()
    );
    file.library.len()
}

/// `<T as Helper>::__hot_original_NAME_FP` is `T::NAME`; `path::f::__hot_original_FP` is `path::f`.
fn hot_function_name(symbol: &str) -> String {
    let Some((head, tail)) = symbol.split_once("::__hot_original_") else {
        return symbol.to_owned();
    };
    match head
        .strip_prefix('<')
        .and_then(|head| head.split_once(" as "))
    {
        Some((self_ty, _)) => {
            let method = tail.rsplit_once('_').map_or(tail, |(method, _)| method);
            format!("{self_ty}::{method}")
        }
        None => head.to_owned(),
    }
}

fn v2_is_checked_then_applied(fixture: &Fixture, app: &mut RunningApp) -> PathBuf {
    fixture.edit("logic/src/lib.rs", "\"v1\"", "\"v2\"");
    fixture.edit("logic/src/lib.rs", "failure from v1", "failure from v2");
    let p2 = fixture.build_patch("p2.hotpatch");
    // The differential check sees an unpatched process: a fresh build of the edited sources
    // prints v2 where it prints v1.
    let difference = app.differences_from_a_fresh_build(fixture);
    assert!(
        difference
            .as_deref()
            .is_some_and(|said| said.contains("\"v1\"") && said.contains("\"v2\"")),
        "the differential check sees the unpatched v1 process against the v2 sources: {difference:?}"
    );
    // Compared with cargo's own objects of the base (split into other codegen units), only the
    // three edited functions changed (not `Report::tagged`, the ordinary method one calls).
    let manifest = PatchFile::parse(&std::fs::read(&p2).unwrap())
        .expect("a patch file")
        .manifest;
    let mut changed: Vec<String> = manifest
        .changed_functions
        .iter()
        .map(|name| hot_function_name(name))
        .collect();
    changed.sort();
    assert_eq!(
        changed,
        [
            "logic::Report::edition",
            "logic::Report::fmt",
            "logic::fail"
        ],
        "the patch lists exactly the changed functions: {:?}",
        manifest.changed_functions
    );
    eprintln!(
        "the one-line edit's patch library: {} bytes",
        mapped_library_len(&p2)
    );
    app.drain();
    let steps_before = app.last.as_ref().unwrap().steps;
    // `check` says what `apply` would change, methods included, and changes nothing.
    let checked = fixture
        .tool(&[
            "check",
            p2.to_str().unwrap(),
            "--target",
            fixture.socket().to_str().unwrap(),
        ])
        .success();
    for key in [
        "logic::step",
        "logic::fail",
        "<logic::Report as fmt::Display>::fmt",
        "logic::Report::edition",
    ] {
        assert!(
            checked.stdout.contains(key),
            "check lists {key}: {}",
            checked.describe()
        );
    }
    app.expect_serving("v1", "after check");
    let applied = fixture.apply(&p2).success();
    assert!(
        applied.stderr.contains("Applied"),
        "`apply` reports what it did: {}",
        applied.describe()
    );
    let patched = app.expect_patched("v2", steps_before);
    edition_is(&patched, "v2");
    app.matches_a_fresh_build(fixture, "after applying v2");
    p2
}

/// Edits `from` to `to`, builds the patch (cumulative against the base) and applies it.
fn stacked_patch_applies(fixture: &Fixture, app: &mut RunningApp, from: &str, to: &str) -> PathBuf {
    fixture.edit(
        "logic/src/lib.rs",
        &format!("\"{from}\""),
        &format!("\"{to}\""),
    );
    fixture.edit(
        "logic/src/lib.rs",
        &format!("failure from {from}"),
        &format!("failure from {to}"),
    );
    let patch = fixture.build_patch(&format!("p{}.hotpatch", &to[1..]));
    fixture.apply(&patch).success();
    app.wait_for_version(to);
    let serving = app.expect_serving(to, &format!("after applying {to}"));
    edition_is(&serving, to);
    app.matches_a_fresh_build(fixture, &format!("after applying {to}"));
    patch
}

fn status_shows_each_function_s_patch(
    status: &StatusReport,
    app: &mut RunningApp,
    ids: &[String; 3],
) {
    assert_eq!(
        status.pid,
        app.pid().unwrap(),
        "status is the app's: {status:?}"
    );
    let step = status
        .functions
        .iter()
        .find(|f| f.key == "logic::step")
        .unwrap_or_else(|| panic!("status lists logic::step: {status:?}"));
    assert!(step.version > 0, "logic::step runs patched code: {step:?}");
    assert_eq!(
        step.patch.as_deref(),
        Some(ids[2].as_str()),
        "logic::step runs the last patch's code: {step:?}"
    );
    // The version string lives in a hot trait method: methods are patched like functions.
    let display = status
        .functions
        .iter()
        .find(|f| f.key == "<logic::Report as fmt::Display>::fmt")
        .unwrap_or_else(|| panic!("status lists the Display method of Report: {status:?}"));
    assert_eq!(
        display.patch.as_deref(),
        Some(ids[2].as_str()),
        "the method runs the last patch's code: {display:?}"
    );
    // In the `#[hot]` block with an ordinary method, the hot one is listed and patched; the
    // ordinary one (`tagged`, generic through `impl Into<String>`) is not in the table.
    let edition = status
        .functions
        .iter()
        .find(|f| f.key == "logic::Report::edition")
        .unwrap_or_else(|| panic!("status lists logic::Report::edition: {status:?}"));
    assert_eq!(
        edition.patch.as_deref(),
        Some(ids[2].as_str()),
        "the hot method beside an ordinary one runs the last patch's code: {edition:?}"
    );
    assert!(
        !status.functions.iter().any(|f| f.key.contains("tagged")),
        "status lists hot functions only, not the ordinary method `tagged`: {:?}",
        status.functions
    );
}

fn history_lists_the_commits(fixture: &Fixture) {
    let history = fixture
        .tool(&["history", "--target", fixture.socket().to_str().unwrap()])
        .success();
    assert_eq!(
        history.stdout.matches("committed").count(),
        3,
        "history lists the three commits: {}",
        history.describe()
    );
    assert!(
        history.stdout.contains("logic::step v"),
        "{}",
        history.describe()
    );
}

/// `history | head -0`: the reader is gone before the tool writes anything; the tool stops
/// quietly with exit code 0 instead of panicking or reporting an error.
fn a_closed_stdout_ends_history_quietly(fixture: &Fixture) {
    let mut child = fixture
        .tool_command(&["history", "--target", fixture.socket().to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(pipe_without_reader())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting `cargo hotpatch history`");
    let mut errors = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut errors)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{errors}");
    assert!(errors.is_empty(), "expected a quiet exit, got:\n{errors}");
}

fn status_lists_the_patches_and_their_commits(
    status: &StatusReport,
    ids: &[String; 3],
    patches: [&Path; 3],
) {
    let listed: Vec<&str> = status.patches.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        listed, ids,
        "status lists the three patches, oldest first: {status:?}"
    );
    assert!(
        status
            .patches
            .iter()
            .all(|p| p.active && p.crates == ["logic"]),
        "the three patches of `logic` are active: {:?}",
        status.patches
    );
    let committed: Vec<&str> = status
        .history
        .iter()
        .filter(|h| h.action == "committed")
        .map(|h| h.label.as_str())
        .collect();
    assert_eq!(
        committed, ids,
        "history has one commit per patch: {:?}",
        status.history
    );
    assert!(
        status.history.iter().all(|h| !h.changes.is_empty()),
        "each history entry lists its function changes: {:?}",
        status.history
    );
    let libraries: u64 = patches.map(|p| mapped_library_len(p) as u64).iter().sum();
    assert_eq!(
        status.mapped_bytes, libraries,
        "status reports the memory the three patch libraries keep mapped: {status:?}"
    );
}

fn rollbacks_return_to_the_base(fixture: &Fixture, app: &mut RunningApp) {
    for version in ["v3", "v2", "v1"] {
        fixture.rollback().success();
        app.wait_for_version(version);
        app.expect_serving(version, &format!("after rolling back to {version}"));
    }
    let status = fixture.status();
    let step = status
        .functions
        .iter()
        .find(|f| f.key == "logic::step")
        .unwrap();
    assert_eq!(
        step.patch, None,
        "logic::step runs the base's code again: {step:?}"
    );
    assert!(
        status.patches.iter().all(|p| !p.active),
        "every patch is rolled back: {:?}",
        status.patches
    );
    assert_eq!(
        status
            .history
            .iter()
            .filter(|h| h.action == "rolled_back")
            .count(),
        3,
        "history has the three rollbacks: {:?}",
        status.history
    );
}

fn unpatchable_changes_are_refused(fixture: &Fixture, app: &mut RunningApp) {
    // 6a. A hot function's signature changed: refused at build time, naming it.
    fixture.edit(
        "logic/src/lib.rs",
        "pub fn fail() -> u32",
        "pub fn fail() -> u64",
    );
    fixture
        .build_refused("signature.hotpatch", "hot-signature-changed")
        .stderr_names(&["logic::fail", "restart"]);
    fixture.edit(
        "logic/src/lib.rs",
        "pub fn fail() -> u64",
        "pub fn fail() -> u32",
    );
    app.expect_serving("v1", "after the refused signature change");

    // 6a'. A type's layout changed (a field added to `Report`): values of the old layout may be
    // live in the process, so the patch is refused, naming the type.
    fixture.edit(
        "logic/src/lib.rs",
        "    pub spawned: u64,\n}",
        "    pub spawned: u64,\n    pub extra: u8,\n}",
    );
    fixture.edit(
        "logic/src/lib.rs",
        "        spawned: SPAWNED.load(Ordering::SeqCst),\n",
        "        spawned: SPAWNED.load(Ordering::SeqCst),\n        extra: 0,\n",
    );
    fixture
        .build_refused("layout.hotpatch", "layout-changed")
        .stderr_names(&["logic::Report", "layout", "restart"]);
    fixture.edit("logic/src/lib.rs", "    pub extra: u8,\n", "");
    fixture.edit("logic/src/lib.rs", "        extra: 0,\n", "");
    app.expect_serving("v1", "after the refused layout change");

    // 6a''. A generic function changed: the app holds its own compiled copy, so the patch
    // rebuilds `app` against the new `logic` too and redirects the copy's entry.
    fixture.edit(
        "logic/src/lib.rs",
        "format!(\"<{value}>\")",
        "format!(\"[{value}]\")",
    );
    copies_are_rebuilt(fixture, "generic.hotpatch", "logic::describe");
    fixture.edit(
        "logic/src/lib.rs",
        "format!(\"[{value}]\")",
        "format!(\"<{value}>\")",
    );
    app.expect_serving("v1", "after the refused change of a generic function");

    // 6a'''. The ordinary method of a `#[hot]` block changed: it is generic (`impl Into<String>`),
    // so it is refused like `describe`, not half applied.
    let tagged = "format!(\"{}@{}\", tag.into(), self.steps)";
    let tagged_v2 = "format!(\"{}#{}\", tag.into(), self.steps)";
    fixture.edit("logic/src/lib.rs", tagged, tagged_v2);
    copies_are_rebuilt(fixture, "cold-method.hotpatch", "logic::Report::tagged");
    fixture.edit("logic/src/lib.rs", tagged_v2, tagged);
    app.expect_serving(
        "v1",
        "after the refused change of an ordinary method of a hot block",
    );

    // 6a''''. The binary's `main` changed: it runs once, from the start, so the patch is refused,
    // naming it.
    fixture.edit("app/src/main.rs", ".unwrap_or(50)", ".unwrap_or(60)");
    fixture
        .build_refused("binary.hotpatch", "main-changed")
        .stderr_names(&["app::main", "restart"]);
    fixture.edit("app/src/main.rs", ".unwrap_or(60)", ".unwrap_or(50)");
    app.expect_serving("v1", "after the refused change of the binary crate");
}

/// Builds the patch of a changed generic item (`item`): it rebuilds `app`, which holds a copy of
/// it, and redirects the entries of the item's copies.
fn copies_are_rebuilt(fixture: &Fixture, file: &str, item: &str) {
    let patch = fixture.build_patch(file);
    let manifest = PatchFile::parse(&std::fs::read(&patch).unwrap())
        .expect("a patch file")
        .manifest;
    assert!(
        manifest
            .entry_redirects
            .iter()
            .any(|r| r.name.starts_with(item)),
        "the copies of {item} are redirected: {:#?}",
        manifest.entry_redirects
    );
}

/// `logic::settle` has `#[hot]` written above `#[tracing::instrument]` (`logic::step` the other
/// order): its span is part of the code a patch replaces all the same. A body edit, removing the
/// attribute and writing it back above `#[hot]` are each patched, and the process does what a
/// fresh build of the same sources does (a span left in the entry the process keeps would show as
/// events inside `settle`'s span that a fresh build has not).
fn the_attribute_order_does_not_change_what_a_patch_does(fixture: &Fixture, app: &mut RunningApp) {
    let events_per_tick = |n: u64| {
        move |last: &Tick, tick: &Tick| {
            tick.settled.zip(last.settled).map(|(now, then)| now - then) == Some(n)
        }
    };
    app.expect_serving("v4", "before editing `settle`");
    app.wait_until("one event per tick in settle's span", events_per_tick(1));
    const EVENT: &str = "tracing::info!(tick, \"settled\");";
    const ATTRIBUTE: &str = "#[tracing::instrument(level = \"info\")]\n";
    fixture.edit(
        "logic/src/lib.rs",
        EVENT,
        "tracing::info!(tick, \"settled\"); tracing::info!(tick, \"again\");",
    );
    fixture
        .apply(&fixture.build_patch("settle-body.hotpatch"))
        .success();
    app.wait_until("two events per tick in settle's span", events_per_tick(2));
    app.matches_a_fresh_build(fixture, "after editing the body of `settle`");

    fixture.edit(
        "logic/src/lib.rs",
        &format!("#[hot]\n{ATTRIBUTE}"),
        "#[hot]\n",
    );
    fixture
        .apply(&fixture.build_patch("settle-untraced.hotpatch"))
        .success();
    app.wait_until("no span around settle's events", events_per_tick(0));
    app.matches_a_fresh_build(fixture, "after removing `settle`'s span");

    fixture.edit(
        "logic/src/lib.rs",
        "#[hot]\npub fn settle",
        &format!("{ATTRIBUTE}#[hot]\npub fn settle"),
    );
    fixture
        .apply(&fixture.build_patch("settle-above.hotpatch"))
        .success();
    app.wait_until("settle's span back", events_per_tick(2));
    app.matches_a_fresh_build(fixture, "after writing `settle`'s span above `#[hot]`");
}

fn bad_patch_files_are_refused(fixture: &Fixture, app: &mut RunningApp, p2: &Path) {
    let status_before = fixture.status();
    let p2_bytes = std::fs::read(p2).expect("reading p2");
    let library_offset = p2_bytes.len() - PatchFile::parse(&p2_bytes).unwrap().library.len();

    // 6b. A corrupt patch: one byte of the library flipped.
    let mut corrupt = p2_bytes.clone();
    let middle = library_offset + (corrupt.len() - library_offset) / 2;
    corrupt[middle] ^= 0x40;
    let corrupt_path = fixture.root().join("corrupt.hotpatch");
    std::fs::write(&corrupt_path, &corrupt).unwrap();
    fixture
        .apply(&corrupt_path)
        .failure()
        .stderr_names(&["`integrity`"]);
    app.expect_serving("v1", "after refusing a corrupt patch");

    // 6c. A truncated patch.
    let truncated_path = fixture.root().join("truncated.hotpatch");
    std::fs::write(&truncated_path, &p2_bytes[..library_offset + 100]).unwrap();
    fixture
        .apply(&truncated_path)
        .failure()
        .stderr_names(&["`integrity`", "truncated"]);
    app.expect_serving("v1", "after refusing a truncated patch");

    // 6d. A patch made for another build.
    let mut foreign = PatchFile::parse(&p2_bytes).unwrap();
    foreign.manifest.base.build_id = "00".repeat(20);
    let foreign = PatchFile::new(foreign.manifest, foreign.library);
    let foreign_path = fixture.root().join("foreign.hotpatch");
    std::fs::write(&foreign_path, foreign.to_bytes()).unwrap();
    fixture
        .apply(&foreign_path)
        .failure()
        .stderr_names(&["`base_build`"]);
    app.expect_serving("v1", "after refusing a patch for another build");
    crafted_manifests_are_refused(fixture, app, &p2_bytes);
    assert_eq!(
        fixture.status(),
        status_before,
        "refused patches change nothing"
    );
}

/// 6g. A manifest whose redirect points into the library's RELRO range: `check` and `apply`
/// refuse it and the process lives. 6h. A manifest edited by hand (another valid JSON): refused
/// by the integrity check, not applied as a new patch.
fn crafted_manifests_are_refused(fixture: &Fixture, app: &mut RunningApp, p2_bytes: &[u8]) {
    let socket = fixture.socket();
    let check = |path: &Path| {
        fixture.tool(&[
            "check",
            path.to_str().unwrap(),
            "--target",
            socket.to_str().unwrap(),
        ])
    };
    let p2 = PatchFile::parse(p2_bytes).unwrap();
    let relro = relro_start(&p2.library);
    let mut manifest = p2.manifest.clone();
    manifest.redirects.push(StaticRedirect {
        name: "crafted".into(),
        cell_offset: relro,
        host_offset: 0,
        thread_local: false,
        module: None,
    });
    let crafted = fixture.root().join("crafted-redirect.hotpatch");
    std::fs::write(
        &crafted,
        PatchFile::new(manifest, p2.library.clone()).to_bytes(),
    )
    .unwrap();
    check(&crafted)
        .failure()
        .stderr_names(&["`integrity`", "RELRO", "`crafted`"]);
    fixture
        .apply(&crafted)
        .failure()
        .stderr_names(&["`integrity`", "RELRO"]);
    app.expect_serving("v1", "after refusing a redirect into RELRO");

    // A redirect whose cell is fine but whose static lies outside the executable.
    let mut manifest = p2.manifest.clone();
    manifest.redirects.push(StaticRedirect {
        name: "far away".into(),
        cell_offset: last_writable_word(&p2.library),
        host_offset: 1 << 40,
        thread_local: false,
        module: None,
    });
    let far = fixture.root().join("crafted-target.hotpatch");
    std::fs::write(
        &far,
        PatchFile::new(manifest, p2.library.clone()).to_bytes(),
    )
    .unwrap();
    check(&far)
        .failure()
        .stderr_names(&["`far away`", "outside the executable's loaded segments"]);
    app.expect_serving("v1", "after refusing a redirect outside the executable");

    let mut edited = p2_bytes.to_vec();
    let field = b"\"created_unix\":";
    let at = edited
        .windows(field.len())
        .position(|w| w == field)
        .expect("the manifest has created_unix")
        + field.len();
    edited[at] = if edited[at] == b'1' { b'2' } else { b'1' };
    let edited_path = fixture.root().join("edited-manifest.hotpatch");
    std::fs::write(&edited_path, &edited).unwrap();
    check(&edited_path)
        .failure()
        .stderr_names(&["`integrity`", "manifest was changed"]);
    fixture
        .apply(&edited_path)
        .failure()
        .stderr_names(&["`integrity`", "manifest was changed"]);
    app.expect_serving("v1", "after refusing an edited manifest");
}

/// The last aligned word of a patch library's writable data (its `.bss`, after RELRO).
fn last_writable_word(library: &[u8]) -> u64 {
    use object::read::elf::{FileHeader as _, ProgramHeader as _};
    let header = object::elf::FileHeader64::<object::Endianness>::parse(library).unwrap();
    let endian = header.endian().unwrap();
    let writable = header
        .program_headers(endian, library)
        .unwrap()
        .iter()
        .filter(|ph| ph.p_type(endian) == object::elf::PT_LOAD)
        .filter(|ph| ph.p_flags(endian) & object::elf::PF_W != 0)
        .map(|ph| (ph.p_vaddr(endian) + ph.p_memsz(endian) - 8) & !7)
        .max()
        .expect("the patch library has writable data");
    assert!(writable >= relro_end(library), "the word is past RELRO");
    writable
}

/// The end of the `PT_GNU_RELRO` range of a patch library.
fn relro_end(library: &[u8]) -> u64 {
    use object::read::elf::{FileHeader as _, ProgramHeader as _};
    let header = object::elf::FileHeader64::<object::Endianness>::parse(library).unwrap();
    let endian = header.endian().unwrap();
    header
        .program_headers(endian, library)
        .unwrap()
        .iter()
        .find(|ph| ph.p_type(endian) == object::elf::PT_GNU_RELRO)
        .map(|ph| ph.p_vaddr(endian) + ph.p_memsz(endian))
        .expect("the patch library has a RELRO range")
}

/// The start of the `PT_GNU_RELRO` range of a patch library.
fn relro_start(library: &[u8]) -> u64 {
    use object::read::elf::{FileHeader as _, ProgramHeader as _};
    let header = object::elf::FileHeader64::<object::Endianness>::parse(library).unwrap();
    let endian = header.endian().unwrap();
    header
        .program_headers(endian, library)
        .unwrap()
        .iter()
        .find(|ph| ph.p_type(endian) == object::elf::PT_GNU_RELRO)
        .map(|ph| ph.p_vaddr(endian))
        .expect("the patch library has a RELRO range")
}

fn the_same_patch_twice_changes_nothing(fixture: &Fixture, app: &mut RunningApp, p4: &Path) {
    // 6e. The same patch twice: re-applying the rolled-back v4, then again.
    fixture.apply(p4).success();
    app.wait_for_version("v4");
    app.expect_serving("v4", "after re-applying v4");
    let status_before = fixture.status();
    let again = fixture.apply(p4).success();
    assert!(
        again.stdout.contains("already applied") || again.stderr.contains("already applied"),
        "applying a patch twice says it is already applied: {}",
        again.describe()
    );
    app.expect_serving("v4", "after applying v4 twice");
    assert_eq!(
        fixture.status(),
        status_before,
        "applying a patch twice changes nothing"
    );
}

/// `p4` applied, `p2` applied over it: applying `p4` again must not answer "already applied"
/// while v2 runs; it is refused, naming the patch running.
fn a_patch_under_a_newer_one_is_refused(
    fixture: &Fixture,
    app: &mut RunningApp,
    p2: &Path,
    p4: &Path,
) {
    fixture.apply(p2).success();
    app.wait_for_version("v2");
    let status_before = fixture.status();
    let refused = fixture.apply(p4).exit_code(5);
    let running = &patch_id(p2)[..12];
    assert!(
        refused.stderr.contains(running)
            && refused.stderr.contains("running now")
            && refused.stderr.contains("rollback"),
        "the refusal names the patch running and what to do: {}",
        refused.describe()
    );
    app.expect_serving("v2", "after refusing the patch under it");
    assert_eq!(
        fixture.status(),
        status_before,
        "the refused patch changes nothing"
    );
    // Back to p4, as the next step finds the process.
    fixture.rollback().success();
    app.wait_for_version("v4");
}

#[test]
fn private_statics_and_thread_locals_are_shared_with_patches() {
    let fixture = Fixture::new(locations!(), Profile::Dev);
    // The lazy static `step` reads is private in this base (only dev builds can share it).
    fixture.edit("logic/src/lib.rs", "pub static GREETING", "static GREETING");
    let mut app = RunningApp::start(&fixture);
    app.wait_for_version("v1");
    the_traced_function_is_patched_keeping_its_span_and_lazy_value(&fixture, &mut app);
    a_patch_adds_to_the_host_s_private_static(&fixture, &mut app);
    a_patch_adds_to_the_host_s_private_thread_local(&fixture, &mut app);
    rolling_both_back_keeps_the_state(&fixture, &mut app);
    a_patch_introduces_a_private_static(&fixture, &mut app);
    the_next_patch_reaches_the_introduced_static(&fixture, &mut app);
    a_pointer_to_a_private_static_in_data_is_shared(&fixture, &mut app);
    a_patch_introduces_a_private_thread_local(&fixture, &mut app);
    the_next_patch_reaches_the_introduced_thread_local(&fixture, &mut app);
}

/// `logic::step` has a `#[tracing::instrument]` span and an `info!` event (private callsite
/// statics that tracing's macros make) and reads a `LazyLock`. A patch of it builds and applies:
/// the new code runs (a second event per tick), every event still reaches the app's subscriber
/// inside the span, each callsite of the patched code registers once, and no lazy value is
/// initialised twice: the running private `GREETING` is read, and a private `LazyLock` the patch
/// introduces is initialised once, then reached by the next patch instead of a fresh copy.
fn the_traced_function_is_patched_keeping_its_span_and_lazy_value(
    fixture: &Fixture,
    app: &mut RunningApp,
) {
    let before = fixture.read("logic/src/lib.rs");
    let base = app.expect_serving("v1", "before patching the traced function");
    assert_eq!(base.lazy, Some(1), "the base initialised GREETING once");
    // On the event's line and at the end of the file: no other callsite's line changes.
    fixture.edit(
        "logic/src/lib.rs",
        "tracing::info!(steps, greeting, \"stepped\");",
        "tracing::info!(steps, greeting, \"stepped\"); tracing::info!(farewell = *FAREWELL, \"again\");",
    );
    fixture.replace_file(
        "logic/src/lib.rs",
        &format!(
            "{}\nstatic FAREWELL: LazyLock<u64> = LazyLock::new(|| {{\n    LAZY_INITS.fetch_add(1, Ordering::SeqCst);\n    7\n}});\n",
            fixture.read("logic/src/lib.rs")
        ),
    );
    let traced = fixture.build_patch("traced.hotpatch");
    let manifest = PatchFile::parse(&std::fs::read(&traced).unwrap())
        .expect("a patch file")
        .manifest;
    let redirected: Vec<&str> = manifest.redirects.iter().map(|r| r.name.as_str()).collect();
    assert!(
        redirected.contains(&"logic::GREETING"),
        "the patch reaches the running GREETING through a cell: {redirected:?}"
    );
    fixture.apply(&traced).success();
    let patched = app.wait_until("two events per tick in step's span", |last, tick| {
        tick.traced.zip(last.traced).map(|(now, then)| now - then) == Some(2)
    });
    let registered = patched.callsites.expect("the app counts callsites");
    assert!(
        registered > base.callsites.unwrap(),
        "the new event's callsite registered itself: {base:?} then {patched:?}"
    );
    // A callsite registers once, not on every call; each lazy static is initialised once.
    let settled = app.expect_serving("v1", "after patching the traced function");
    for _ in 0..2 {
        let tick = app.expect_serving("v1", "after patching the traced function");
        assert_eq!(
            tick.callsites, settled.callsites,
            "{settled:?} then {tick:?}"
        );
        assert_eq!(
            tick.lazy,
            Some(2),
            "GREETING and FAREWELL, once each: {tick:?}"
        );
    }
    // The next (cumulative) patch reaches the running FAREWELL: a fresh copy would initialise
    // again.
    fixture.edit("logic/src/lib.rs", "\"again\"", "\"once more\"");
    let next = fixture.build_patch("traced-again.hotpatch");
    fixture.apply(&next).success();
    for _ in 0..2 {
        let tick = app.expect_serving("v1", "after patching the traced function again");
        assert_eq!(
            tick.lazy,
            Some(2),
            "FAREWELL was not initialised again: {tick:?}"
        );
        assert_eq!(
            tick.traced.unwrap() - settled.traced.unwrap(),
            2 * (tick.tick - settled.tick),
            "both events of each step reached the subscriber: {settled:?} then {tick:?}"
        );
    }
    app.matches_a_fresh_build(fixture, "after patching the traced function");
    // Back to the base's text: later patches of this test leave `logic` as it runs now.
    fixture.replace_file("logic/src/lib.rs", &before);
}

fn a_patch_adds_to_the_host_s_private_static(fixture: &Fixture, app: &mut RunningApp) {
    // `counter::count` adds to a private static: the patch's code must add to the host's copy.
    app.count_steps = vec![1, 1000];
    fixture.edit(
        "counter/src/lib.rs",
        "fetch_add(1, Ordering::SeqCst)",
        "fetch_add(1000, Ordering::SeqCst)",
    );
    let counter_patch = fixture.build_patch("counter.hotpatch");
    fixture.apply(&counter_patch).success();
    app.wait_until("count to step by 1000", |last, tick| {
        tick.count == last.count + 1000
    });
    app.count_steps = vec![1000];
    app.expect_serving("v1", "after patching code that uses a private static");
}

fn a_patch_adds_to_the_host_s_private_thread_local(fixture: &Fixture, app: &mut RunningApp) {
    // `perthread::count_here` adds to a private thread-local: the same for the host's copy.
    app.here_steps = vec![1, 1000];
    fixture.edit(
        "perthread/src/lib.rs",
        "PER_THREAD.get() + 1)",
        "PER_THREAD.get() + 1000)",
    );
    let thread_local_patch = fixture.build_patch("perthread.hotpatch");
    fixture.apply(&thread_local_patch).success();
    app.wait_until("here to step by 1000", |last, tick| {
        tick.here == last.here + 1000
    });
    app.here_steps = vec![1000];
    app.expect_serving("v1", "after patching code that uses a private thread-local");
}

fn rolling_both_back_keeps_the_state(fixture: &Fixture, app: &mut RunningApp) {
    // Rolling both back returns to the original code, still on the same state.
    app.here_steps = vec![1, 1000];
    fixture.rollback().success();
    app.wait_until("here to step by 1 again", |last, tick| {
        tick.here == last.here + 1
    });
    app.here_steps = vec![1];
    app.count_steps = vec![1, 1000];
    fixture.rollback().success();
    app.wait_until("count to step by 1 again", |last, tick| {
        tick.count == last.count + 1
    });
    app.count_steps = vec![1];
    app.expect_serving("v1", "after rolling both back");
}

fn a_patch_introduces_a_private_static(fixture: &Fixture, app: &mut RunningApp) {
    // A private static that a patch introduces is not in the host: the next (cumulative) patch
    // reaches the running copy in the earlier patch's library instead of a fresh one. (The
    // sources go back to the base first: the two patches above were rolled back.)
    fixture.edit(
        "counter/src/lib.rs",
        "fetch_add(1000, Ordering::SeqCst)",
        "fetch_add(1, Ordering::SeqCst)",
    );
    fixture.edit(
        "perthread/src/lib.rs",
        "PER_THREAD.get() + 1000)",
        "PER_THREAD.get() + 1)",
    );
    fixture.edit(
        "counter/src/lib.rs",
        "static PRIVATE_COUNT: AtomicU64 = AtomicU64::new(0);",
        "static PRIVATE_COUNT: AtomicU64 = AtomicU64::new(0);\nstatic ADDED: AtomicU64 = AtomicU64::new(0);",
    );
    fixture.edit(
        "counter/src/lib.rs",
        "PRIVATE_COUNT.fetch_add(1, Ordering::SeqCst) + 1",
        "PRIVATE_COUNT.fetch_add(1, Ordering::SeqCst) + 1 + ADDED.fetch_add(1000, Ordering::SeqCst)",
    );
    // Each tick now adds 1 to the private count and 1000 to the new static.
    app.count_steps = vec![1, 1001];
    let introducing = fixture.build_patch("introduces.hotpatch");
    fixture.apply(&introducing).success();
    app.wait_until("count to step by 1001", |last, tick| {
        tick.count == last.count + 1001
    });
    app.count_steps = vec![1001];
    app.expect_serving("v1", "after a patch that introduces a static");
}

fn the_next_patch_reaches_the_introduced_static(fixture: &Fixture, app: &mut RunningApp) {
    // The next patch steps the new static by 2000: a fresh copy would restart it at 0 and make
    // the count drop, which the line checks would catch.
    app.count_steps = vec![1001, 2001];
    fixture.edit(
        "counter/src/lib.rs",
        "ADDED.fetch_add(1000, Ordering::SeqCst)",
        "ADDED.fetch_add(2000, Ordering::SeqCst)",
    );
    let continuing = fixture.build_patch("continues.hotpatch");
    fixture.apply(&continuing).success();
    app.wait_until("count to step by 2001", |last, tick| {
        tick.count == last.count + 2001
    });
    app.count_steps = vec![2001];
    app.expect_serving(
        "v1",
        "after a patch that uses the static an earlier patch introduced",
    );
}

fn a_pointer_to_a_private_static_in_data_is_shared(fixture: &Fixture, app: &mut RunningApp) {
    // A static table holding the address of the host's private static, indexed at run time (so
    // the code reads the pointer from the table): the runtime sets the patch's copy of that
    // pointer to the running count after loading. A pointer to the patch's own copy of the count
    // would restart it at 0, which the line checks would catch.
    let before = fixture.read("counter/src/lib.rs");
    fixture.edit(
        "counter/src/lib.rs",
        "static ADDED: AtomicU64",
        "static TABLE: [&AtomicU64; 1] = [&PRIVATE_COUNT];\nstatic ADDED: AtomicU64",
    );
    fixture.edit(
        "counter/src/lib.rs",
        "PRIVATE_COUNT.fetch_add(1, Ordering::SeqCst) + 1 +",
        "TABLE[(ADDED.load(Ordering::SeqCst) % 1) as usize].fetch_add(1, Ordering::SeqCst) + 1 +",
    );
    let alias = fixture.build_patch("alias.hotpatch");
    let manifest = PatchFile::parse(&std::fs::read(&alias).unwrap())
        .expect("a patch file")
        .manifest;
    assert!(
        manifest
            .redirects
            .iter()
            .any(|r| r.name == "counter::PRIVATE_COUNT"),
        "the pointer in TABLE is set to the running count: {:?}",
        manifest.redirects
    );
    fixture.apply(&alias).success();
    app.expect_serving("v1", "after sharing a pointer to a private static in data");
    app.expect_serving("v1", "after sharing a pointer to a private static in data");

    // A pointer to it inside an anonymous constant (the array `ALIASES` points at) has no symbol
    // the runtime could find it by: refused, naming the static, its user and why.
    fixture.replace_file("counter/src/lib.rs", &before);
    fixture.edit(
        "counter/src/lib.rs",
        "static ADDED: AtomicU64",
        "static ALIASES: &[&AtomicU64] = &[&PRIVATE_COUNT];\nstatic ADDED: AtomicU64",
    );
    fixture.edit(
        "counter/src/lib.rs",
        "PRIVATE_COUNT.fetch_add(1, Ordering::SeqCst) + 1 +",
        "ALIASES[0].fetch_add(1, Ordering::SeqCst) + 1 +",
    );
    let refused = fixture.build_refused("aliases.hotpatch", "private-static-would-fork");
    refused.stderr_names(&[
        "`counter::count`",
        "`counter::PRIVATE_COUNT`",
        "a pointer to it is stored in data",
        "refused",
    ]);
    // The cause, not another: nothing is optimised in a dev build.
    assert!(
        !refused.stderr.contains("optimis"),
        "a dev build's refusal blames optimisation: {}",
        refused.describe()
    );
    fixture.replace_file("counter/src/lib.rs", &before);
    app.expect_serving(
        "v1",
        "after refusing a pointer to a private static in a constant",
    );
}

fn a_patch_introduces_a_private_thread_local(fixture: &Fixture, app: &mut RunningApp) {
    // A private thread-local a patch introduces lives in that patch's library; it counts the
    // ticks on the app's thread (and leaves the count as it steps).
    fixture.edit(
        "counter/src/lib.rs",
        "static ADDED: AtomicU64",
        "thread_local! {\n    static FRESH: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };\n}\nstatic ADDED: AtomicU64",
    );
    fixture.edit(
        "counter/src/lib.rs",
        "ADDED.fetch_add(2000, Ordering::SeqCst)",
        "ADDED.fetch_add(2000, Ordering::SeqCst) + FRESH.with(|fresh| { fresh.set(fresh.get() + 1); 0 })",
    );
    let introducing = fixture.build_patch("fresh.hotpatch");
    fixture.apply(&introducing).success();
    app.expect_serving("v1", "after a patch that introduces a thread-local");
}

fn the_next_patch_reaches_the_introduced_thread_local(fixture: &Fixture, app: &mut RunningApp) {
    // The next (cumulative) patch reaches the running thread-local in the earlier patch's
    // library, as it does an introduced static: it finds the ticks counted so far. A fresh copy
    // would start at 0 and add a million to the count, which the line checks would catch.
    fixture.edit(
        "counter/src/lib.rs",
        "FRESH.with(|fresh| { fresh.set(fresh.get() + 1); 0 })",
        "FRESH.with(|fresh| { let seen = fresh.get(); fresh.set(seen + 1); if seen == 0 { 1_000_000 } else { 0 } })",
    );
    let continuing = fixture.build_patch("fresh-again.hotpatch");
    let manifest = PatchFile::parse(&std::fs::read(&continuing).unwrap())
        .expect("a patch file")
        .manifest;
    assert!(
        manifest
            .redirects
            .iter()
            .any(|r| r.name.contains("FRESH") && r.thread_local && r.module.is_some()),
        "the thread-local is reached in the patch that introduced it: {:?}",
        manifest.redirects
    );
    fixture.apply(&continuing).success();
    app.expect_serving(
        "v1",
        "after a patch that uses the thread-local an earlier patch introduced",
    );
    app.expect_serving(
        "v1",
        "after a patch that uses the thread-local an earlier patch introduced",
    );
}

#[test]
fn a_process_that_trusts_a_key_applies_only_patches_it_signed() {
    let mut fixture = Fixture::new(locations!(), Profile::Dev);
    let trusted_key = fixture.root().join("trusted.key");
    let other_key = fixture.root().join("other.key");
    let keygen = fixture
        .tool(&["keygen", "-o", trusted_key.to_str().unwrap()])
        .success();
    let public = keygen.stdout.trim().to_owned();
    assert_eq!(
        public.len(),
        64,
        "keygen prints the public key: {}",
        keygen.describe()
    );
    assert_eq!(
        std::fs::read_to_string(trusted_key.with_extension("key.pub"))
            .unwrap()
            .trim(),
        public
    );
    fixture
        .tool(&["keygen", "-o", other_key.to_str().unwrap()])
        .success();
    // keygen never overwrites a key.
    fixture
        .tool(&["keygen", "-o", trusted_key.to_str().unwrap()])
        .failure();

    fixture.set_env("HOTRELOAD_TRUSTED_KEYS", &public);
    let mut app = RunningApp::start(&fixture);
    app.wait_for_version("v1");
    fixture.edit("logic/src/lib.rs", "\"v1\"", "\"v2\"");
    fixture.edit("logic/src/lib.rs", "failure from v1", "failure from v2");

    // Unsigned, and signed by a key the process does not trust: refused before loading.
    let unsigned = fixture.build_patch("unsigned.hotpatch");
    fixture
        .apply(&unsigned)
        .failure()
        .stderr_names(&["`authenticity`", "not signed"]);
    // `check` of it: exit code 5, a target refused, named in the final JSON record.
    fixture
        .tool(&[
            "check",
            unsigned.to_str().unwrap(),
            "--message-format",
            "json",
            "--target",
            fixture.socket().to_str().unwrap(),
        ])
        .target_refused()
        .stderr_names(&["refused at step `authenticity`", "not signed"]);
    let (strangers, built) = fixture.build_with(
        "strangers.hotpatch",
        &["--sign", other_key.to_str().unwrap()],
    );
    built.success();
    fixture
        .apply(&strangers)
        .failure()
        .stderr_names(&["`authenticity`", "does not trust"]);
    app.expect_serving("v1", "after refusing unsigned and untrusted patches");

    // Signed by the trusted key: applied.
    let (signed, built) = fixture.build_with(
        "signed.hotpatch",
        &["--sign", trusted_key.to_str().unwrap()],
    );
    built.success().stderr_names(&["Signed", &public]);
    fixture.apply(&signed).success();
    app.wait_for_version("v2");
}
