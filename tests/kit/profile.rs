//! The cargo profile a fixture is built with, and what follows from it: its arguments, its
//! target directory and how long its first build may take.

use std::time::Duration;

/// The cargo profile the fixture is built with, by `run` and by `build` alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Dev,
    Release,
}

impl Profile {
    /// The directory `cargo hotpatch` keeps its state in: `target/hotpatch/<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Dev => "dev",
            Profile::Release => "release",
        }
    }

    /// What selects the profile on `run` and `build`.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            Profile::Dev => &[],
            Profile::Release => &["--release"],
        }
    }

    /// The fixture builds of each profile have a target directory of their own, so tests of the
    /// two never share cargo's lock or the hotpatch state.
    pub fn target_dir(self) -> &'static str {
        match self {
            Profile::Dev => "fixture-target",
            Profile::Release => "fixture-target-release",
        }
    }

    /// How long the first `run` may take: it may build tokio and the runtime from scratch.
    pub fn first_build(self) -> Duration {
        match self {
            Profile::Dev => Duration::from_secs(300),
            // Optimised, on two cores, while other builds may be running.
            Profile::Release => Duration::from_secs(600),
        }
    }
}
