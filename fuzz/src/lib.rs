//! Fuzz targets for the formats that cross the process boundary (the patch file, its manifest,
//! the control protocol and the control server's request reading, the `.hotreload_states`
//! records) and a driver that runs them on the stable toolchain.
//!
//! `cargo test -p hotreload-fuzz` runs each target for a few seconds over its committed inputs
//! (`corpus/<target>/`, `regressions/<target>/`); `HOTRELOAD_FUZZ_SECS` sets the seconds per
//! target and `HOTRELOAD_FUZZ_SEED` the seed (printed by every run). A finding fails the test
//! and is saved; once the parser is fixed, it is committed under `regressions/`.

pub mod driver;
pub mod mutate;
#[cfg(unix)]
pub mod server;
pub mod targets;
