//! The end-to-end tests of `cargo hotpatch`: build a fixture workspace (`tests/fixtures/patchable`
//! or a copy of `examples/gateway` or `examples/depot`), run it under the tool, patch it, and
//! check what it does.
//!
//! One test binary with a module per feature, as nextest keeps its own: the kit
//! (`hotreload-tests`'s library) and the tests link once, instead of once per file.
//!
//! The tests of one profile share a fixture target directory (`$CARGO_TARGET_TMPDIR/fixture-target`
//! or `fixture-target-release`), so tokio and the runtime compile once per profile; its hotpatch
//! state (base record, control socket) is shared too, so every [`hotreload_tests::Fixture`] holds
//! a cross-process lock on its target directory while it lives: tests on the same directory run
//! one at a time, in this binary or any other process. The release test holds the dev directory
//! too, so its optimised first build never competes with a dev test's.

mod control;
mod depot;
mod dev_loop;
mod entry;
mod exit_codes;
mod fixture_lock;
mod fleet;
mod gateway;
mod patch;
mod record;
mod release;
mod rollout;
mod snake;
mod soak;
mod startup;
mod watch;
