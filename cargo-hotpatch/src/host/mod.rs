//! The first stage: building the app as a patchable host (every workspace crate's rustc
//! invocation captured) and recording its base build, which every later patch is built against.
//!
//! [`capture`] is the rustc wrapper cargo runs; [`record`] is the base record, filled from the
//! captured invocations, the [`sources`] they read and the [`toolchain`] that ran them; [`portable`]
//! copies a record to another machine; [`facts`] are what the host executable says of itself.
//! Nothing here knows about patches.

pub mod capture;
pub mod facts;
pub mod functions;
pub mod portable;
pub mod record;
pub mod sources;
pub mod toolchain;

pub use facts::{hot_identity, HostFacts, HostLocalData, HotFunctions};
pub use functions::{host_functions, HostFunctions};
pub use record::{BaseRecord, CrateRecord};

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use cargo_metadata::{Message, MetadataCommand};

use crate::cli::BuildSelection;
use crate::host::capture::CAPTURE_DIR_ENV;

/// Where a workspace keeps its hotpatch state for one profile.
#[derive(Debug, Clone)]
pub struct HotpatchDirs {
    /// The workspace root.
    pub workspace_root: PathBuf,
    /// `target/hotpatch/<profile>`.
    pub dir: PathBuf,
    /// The cargo profile name.
    pub profile: &'static str,
}

impl HotpatchDirs {
    /// Finds the workspace of the selection.
    pub fn of(selection: &BuildSelection) -> anyhow::Result<Self> {
        let mut command = MetadataCommand::new();
        command.no_deps();
        if let Some(path) = &selection.manifest_path {
            command.manifest_path(path);
        }
        let metadata = command
            .exec()
            .context("reading the workspace with `cargo metadata`")?;
        let profile = if selection.release { "release" } else { "dev" };
        Ok(HotpatchDirs {
            workspace_root: metadata.workspace_root.into_std_path_buf(),
            dir: metadata
                .target_directory
                .into_std_path_buf()
                .join("hotpatch")
                .join(profile),
            profile,
        })
    }

    /// The captured rustc invocations.
    pub fn capture_dir(&self) -> PathBuf {
        self.dir.join("invocations")
    }

    /// The default base record.
    pub fn base_dir(&self) -> PathBuf {
        self.dir.join("base")
    }

    /// The control socket of an app run by `cargo hotpatch run`.
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// Scratch space for patch builds.
    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("work")
    }
}

/// The `--config` arguments the host build gives cargo beyond the user's own settings.
///
/// The runtime checks every patch's sha256 (and signature) before loading it: unoptimised, that
/// took 13 ms for a 650 KB patch in a dev build, most of an apply. A dev host gets those crates
/// optimised.
pub fn config_args(release: bool) -> Vec<String> {
    if release {
        return Vec::new();
    }
    ["sha2", "ed25519-dalek", "curve25519-dalek"]
        .iter()
        .flat_map(|package| {
            [
                "--config".to_owned(),
                format!("profile.dev.package.{package}.opt-level=3"),
            ]
        })
        .collect()
}

/// Builds the host with cargo, capturing every workspace crate's rustc invocation, and records
/// the base build. Returns the record and the executable to run.
pub fn build(
    selection: &BuildSelection,
    dirs: &HotpatchDirs,
) -> anyhow::Result<(BaseRecord, PathBuf)> {
    let wrapper = std::env::current_exe().context("locating the cargo-hotpatch executable")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--message-format=json-render-diagnostics")
        .env("RUSTC_WORKSPACE_WRAPPER", &wrapper)
        .env(CAPTURE_DIR_ENV, dirs.capture_dir())
        .stdout(Stdio::piped());
    // The profile stays the user's own, so the host shares every dependency with a plain `cargo
    // build` (optimised proc macros make patches faster: the README says how to ask for them).
    command.args(config_args(selection.release));
    if let Some(path) = &selection.manifest_path {
        command.arg("--manifest-path").arg(path);
    }
    if let Some(package) = &selection.package {
        command.arg("--package").arg(package);
    }
    if let Some(bin) = &selection.bin {
        command.arg("--bin").arg(bin);
    }
    if selection.release {
        command.arg("--release");
    }
    let mut child = command.spawn().context("running `cargo build`")?;
    let stdout = child.stdout.take().context("reading cargo's output")?;
    let mut executables = Vec::new();
    for message in Message::parse_stream(BufReader::new(stdout)) {
        if let Message::CompilerArtifact(artifact) = message.context("reading cargo's messages")? {
            if let Some(executable) = artifact.executable {
                let is_selected = selection
                    .bin
                    .as_ref()
                    .is_none_or(|bin| &artifact.target.name == bin);
                if is_selected {
                    executables.push(executable.into_std_path_buf());
                }
            }
        }
    }
    let status = child.wait().context("waiting for `cargo build`")?;
    if !status.success() {
        bail!("the host build failed (see cargo's errors above)");
    }
    let executable = match executables.as_slice() {
        [one] => one.clone(),
        [] => bail!("the build produced no executable; pick a binary package with -p or --bin"),
        many => bail!(
            "the build produced {} executables; pick one with --bin ({})",
            many.len(),
            many.iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let record = BaseRecord::record(
        &dirs.base_dir(),
        &dirs.capture_dir(),
        &executable,
        &dirs.workspace_root,
        dirs.profile,
    )?;
    Ok((record, executable))
}

/// The base record in `dir`, or the workspace's default one.
pub fn base_dir_or_default(base: Option<&Path>, dirs: &HotpatchDirs) -> PathBuf {
    base.map(Path::to_owned).unwrap_or_else(|| dirs.base_dir())
}
