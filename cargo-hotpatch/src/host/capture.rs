//! Capturing rustc invocations: cargo runs this binary as `RUSTC_WORKSPACE_WRAPPER` while it
//! builds a patchable host, so every workspace crate's exact invocation can be replayed later.
//!
//! The wrapper also links binaries with `--export-dynamic`, so patch libraries resolve their
//! references to the host's own definitions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Set (to the capture directory) when cargo runs this binary as the rustc wrapper.
pub const CAPTURE_DIR_ENV: &str = "HOTPATCH_CAPTURE_DIR";

/// Environment variables a replay must not inherit: the jobserver belongs to the cargo that ran
/// the build, and the wrapper itself must not run again.
const NOT_REPLAYED: &[&str] = &[
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    CAPTURE_DIR_ENV,
];

/// One rustc invocation, as cargo made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invocation {
    /// The rustc executable.
    pub rustc: PathBuf,
    /// Its arguments, with `--export-dynamic` added for binaries.
    pub args: Vec<String>,
    /// The working directory.
    pub cwd: PathBuf,
    /// The environment, less what must not be replayed.
    pub env: BTreeMap<String, String>,
}

impl Invocation {
    /// The value of `--crate-name`.
    pub fn crate_name(&self) -> Option<&str> {
        self.flag_value("--crate-name")
    }

    /// Every `--crate-type`.
    pub fn crate_types(&self) -> Vec<&str> {
        self.args
            .windows(2)
            .filter(|pair| pair[0] == "--crate-type")
            .map(|pair| pair[1].as_str())
            .collect()
    }

    /// The cargo features enabled: every `--cfg feature="NAME"`.
    pub fn features(&self) -> Vec<String> {
        self.args
            .windows(2)
            .filter(|pair| pair[0] == "--cfg")
            .filter_map(|pair| pair[1].strip_prefix("feature=\""))
            .filter_map(|rest| rest.strip_suffix('"'))
            .map(str::to_owned)
            .collect()
    }

    /// The value following `flag`.
    pub fn flag_value(&self, flag: &str) -> Option<&str> {
        self.args
            .windows(2)
            .find(|pair| pair[0] == flag)
            .map(|pair| pair[1].as_str())
    }

    /// The value of `-C key=value`.
    pub fn codegen_option(&self, key: &str) -> Option<&str> {
        let prefix = format!("{key}=");
        self.args
            .windows(2)
            .filter(|pair| pair[0] == "-C")
            .find_map(|pair| pair[1].strip_prefix(&prefix))
    }

    /// The file cargo asked rustc to write dependency information to, listing every source file.
    pub fn dep_info_path(&self) -> Option<PathBuf> {
        let out_dir = self.flag_value("--out-dir")?;
        let crate_name = self.crate_name()?;
        let extra = self.codegen_option("extra-filename").unwrap_or("");
        Some(Path::new(out_dir).join(format!("{crate_name}{extra}.d")))
    }

    /// The name of the file this invocation is kept under.
    pub fn file_name(crate_name: &str, crate_types: &[&str]) -> String {
        format!("{crate_name}.{}.json", crate_types.join(","))
    }
}

/// Runs as the rustc wrapper: records the invocation, then runs rustc and returns its exit code.
pub fn run_as_wrapper(capture_dir: &Path, mut argv: Vec<String>) -> anyhow::Result<i32> {
    anyhow::ensure!(
        !argv.is_empty(),
        "{CAPTURE_DIR_ENV} is set but cargo passed no rustc to wrap"
    );
    let rustc = PathBuf::from(argv.remove(0));
    let mut invocation = Invocation {
        rustc,
        args: argv,
        cwd: std::env::current_dir().context("reading the working directory")?,
        env: std::env::vars()
            .filter(|(key, _)| !NOT_REPLAYED.contains(&key.as_str()))
            .collect(),
    };
    let is_build_script = invocation
        .crate_name()
        .is_some_and(|name| name.starts_with("build_script_"));
    if invocation.crate_types().contains(&"bin") && !is_build_script {
        invocation
            .args
            .extend(["-C".into(), "link-arg=-Wl,--export-dynamic".into()]);
    }
    // Queries (`-vV`, `--print`, cargo's `___` probe) are not recorded.
    if let Some(crate_name) = invocation.crate_name().filter(|name| *name != "___") {
        std::fs::create_dir_all(capture_dir)
            .with_context(|| format!("creating {}", capture_dir.display()))?;
        let path = capture_dir.join(Invocation::file_name(crate_name, &invocation.crate_types()));
        let json = serde_json::to_vec_pretty(&invocation)?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    let status = Command::new(&invocation.rustc)
        .args(&invocation.args)
        .status()
        .with_context(|| format!("running {}", invocation.rustc.display()))?;
    Ok(status.code().unwrap_or(101))
}

/// Reads every invocation captured in `dir`.
pub fn read_all(dir: &Path) -> anyhow::Result<Vec<Invocation>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            out.push(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("parsing {}", path.display()))?,
            );
        }
    }
    Ok(out)
}
