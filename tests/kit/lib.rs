//! The kit of the end-to-end tests and the benchmarks of `cargo hotpatch`: fixture workspaces
//! (a copy of `tests/fixtures/patchable` or of an example app with its target directory, held
//! by a cross-process lock), the tool run on them, the apps they run and their output, the
//! control socket, and the benchmarks' measuring and tables.
//!
//! The fixture app prints one line per tick (50 ms, or `FIXTURE_TICK_MS`):
//! `tick=N version=vX steps=N spawned=N count=N here=N described=<N> settle=N traced=N settled=N
//! callsites=N lazy=N caught=[failure from vX]` (`traced`, `callsites`: what its tracing subscriber counted; `lazy`:
//! initialisations of `logic`'s lazily initialised statics).
//! [`RunningApp`] checks every line against the one before (see [`ticks`]), so a restarted app,
//! a forked or reset static or a missed tick fails the test at once. After a patch,
//! [`RunningApp::matches_a_fresh_build`] checks the app does what a fresh build of the same sources
//! does from the same state ([`differential`]).
//!
//! Cargo tells a test or benchmark where the tool under test and its scratch directory are only
//! while compiling it; [`locations!`] expands there and hands them to the kit.

pub mod app;
pub mod bench;
pub mod control;
pub mod depot;
pub mod differential;
pub mod display;
pub mod etcd;
pub mod fixture;
pub mod fleet;
pub mod lock;
pub mod process;
pub mod profile;
pub mod ticks;
pub mod tool;
pub mod watch;

use std::time::Duration;

pub use app::RunningApp;
pub use control::{hello, patch_id};
pub use fixture::{copy_dir, patchable_copy, Fixture};
pub use process::{
    children_of, collect_output, parent_of, pipe_without_reader, read_lines, read_timed_lines,
    spawn_app, stop_tool_and_app, wait_for_text, waits_for_arguments,
};
pub use profile::Profile;
pub use tool::{ToolOutput, ToolRun};

pub use hotreload_runtime::wire::patch_file::{Manifest, PatchFile, PatchSignature};
/// The runtime's wire formats the tests read (patch files, the control protocol's reports),
/// named here once.
pub use hotreload_runtime::wire::protocol::{PatchReport, StatusReport};

/// How long a committed patch or rollback may take to show in the app's output.
pub const NEW_VERSION: Duration = Duration::from_secs(30);
/// How long the app may take to print a few more ticks.
pub const MORE_TICKS: Duration = Duration::from_secs(30);

/// Where cargo put what the tests and benchmarks of this package run on: build them with
/// [`locations!`] from inside a test or benchmark target.
#[derive(Debug, Clone, Copy)]
pub struct Locations {
    /// The tool under test (this package's `cargo-hotpatch-under-test` binary), built by cargo
    /// before the test or benchmark runs.
    pub tool: &'static str,
    /// `CARGO_TARGET_TMPDIR`: the fixtures' target directories live here.
    pub scratch: &'static str,
}

/// The [`Locations`] of the test or benchmark target it is written in (only those targets see
/// `CARGO_BIN_EXE_*` and `CARGO_TARGET_TMPDIR`).
#[macro_export]
macro_rules! locations {
    () => {
        $crate::Locations {
            tool: env!("CARGO_BIN_EXE_cargo-hotpatch-under-test"),
            scratch: env!("CARGO_TARGET_TMPDIR"),
        }
    };
}
