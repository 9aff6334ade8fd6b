//! The command line, parsed with clap the way `cargo nextest` is: `cargo` calls this binary as
//! `cargo-hotpatch hotpatch ARGS`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The documented exit codes, for `--help` (what each means: [`crate::Exit`]).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the tool failed (the error and its causes are printed)
  2  the command line could not be parsed
  3  the change cannot be patched: rebuild and restart the app
  4  nothing to patch: no source differs from the base build
  5  a target refused the patch (check, apply) or the rollback: nothing changed on it
  6  a rollout failed and every target it patched was rolled back
`run` exits with the app's own code.";

#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo", version, styles = clap::builder::Styles::styled())]
pub enum Cargo {
    /// Build, apply and roll back live patches of running Rust programs.
    Hotpatch(HotpatchArgs),
}

#[derive(Debug, Args)]
#[command(version, about, long_about = None, after_help = EXIT_CODES_HELP)]
pub struct HotpatchArgs {
    /// Say more: `watch` also lists the versions running after each patch.
    #[arg(short = 'v', long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the app as a patchable host, record the build, and run it.
    Run(RunArgs),
    /// `run`, then patch the running app on every save.
    Watch(WatchArgs),
    /// Build a patch of the current sources against a recorded base build.
    Build(BuildArgs),
    /// Verify a patch against a running process without changing anything.
    Check(TargetFileArgs),
    /// Apply a patch to running processes: every target is checked first, then batches are
    /// applied in turn, each followed by the health command; a failure rolls back what was applied.
    Apply(ApplyArgs),
    /// Show the hot functions, patches and history of a running process.
    Status(ProjectTargetArgs),
    /// Undo the last patch applied to a running process.
    Rollback(ProjectTargetArgs),
    /// Show every commit and rollback a running process has made, oldest first.
    History(ProjectTargetArgs),
    /// Make an ed25519 key pair for signing patches.
    Keygen(KeygenArgs),
    /// On each host, beside the processes it serves: keep them at their service's desired state
    /// in etcd and report each one's state under a lease.
    Agent(AgentArgs),
    /// Store a patch in etcd and move every process of its build to it, batch by batch, each
    /// followed by the health command; a failure returns every moved process to the previous patch.
    Publish(PublishArgs),
}

impl Command {
    /// How the command prints its messages (and its final error record).
    pub fn message_format(&self) -> MessageFormat {
        match self {
            Command::Run(args) => args.selection.message_format,
            Command::Watch(args) => args.run.selection.message_format,
            Command::Build(args) => args.selection.message_format,
            Command::Check(args) => args.targets.message_format,
            Command::Apply(args) => args.patch.targets.message_format,
            Command::Status(args) | Command::Rollback(args) | Command::History(args) => {
                args.message_format
            }
            Command::Keygen(_) | Command::Agent(_) => MessageFormat::Human,
            Command::Publish(args) => args.message_format,
        }
    }
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the secret key (its public key goes to the same path plus `.pub`).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        default_value = "hotpatch.key"
    )]
    pub output: PathBuf,
}

/// How to find and build the app, as cargo takes it.
#[derive(Debug, Clone, Args)]
pub struct BuildSelection {
    /// Path to Cargo.toml.
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Package to build.
    #[arg(short = 'p', long = "package", value_name = "SPEC")]
    pub package: Option<String>,
    /// Binary to build and run.
    #[arg(long, value_name = "NAME")]
    pub bin: Option<String>,
    /// Build with the release profile.
    #[arg(long)]
    pub release: bool,
    /// How to print messages.
    #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MessageFormat {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub selection: BuildSelection,
    /// Also write a self-contained base record to DIR (the build's identity, sources and the
    /// dependency artifacts patches compile against), to keep with a release: `build --base DIR`
    /// then builds patches for it on any machine with the same toolchain.
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// Arguments passed to the app.
    #[arg(last = true, value_name = "ARGS")]
    pub app_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Do not rebuild and restart the app when a change cannot be patched.
    #[arg(long)]
    pub no_restart: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub selection: BuildSelection,
    /// The base build to patch: a base record directory (default: the last `run` of this profile).
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
    /// Where to write the patch file.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Sign the patch with this secret key (made by `cargo hotpatch keygen`).
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// A running process's control socket.
    #[arg(long, value_name = "SOCKET", required = true)]
    pub target: Vec<PathBuf>,
    /// How to print messages.
    #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,
}

/// The processes `status`, `history` and `rollback` ask: the sockets given, or this workspace's
/// own app (the one `run` or `watch` started).
#[derive(Debug, Args)]
pub struct ProjectTargetArgs {
    /// A running process's control socket (default: the app `cargo hotpatch run` or `watch`
    /// started in this workspace).
    #[arg(long, value_name = "SOCKET")]
    pub target: Vec<PathBuf>,
    /// Path to Cargo.toml of the workspace whose app to ask (without `--target`).
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Ask the app started with `--release` (without `--target`; by default the one running).
    #[arg(long)]
    pub release: bool,
    /// How to print messages.
    #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub patch: TargetFileArgs,
    /// Batch sizes, cumulative: counts or percentages of the targets (`1,25%,100%`).
    #[arg(long, value_name = "LIST", default_value = "100%")]
    pub batches: String,
    /// Run after each batch (through `sh -c`, with HOTPATCH_TARGETS listing the patched sockets);
    /// a non-zero exit rolls the rollout back.
    #[arg(long, value_name = "CMD")]
    pub health: Option<String>,
    /// Seconds to wait after each batch's health check.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub pause: f64,
    /// Let the patch redirect the entries of functions that are not `#[hot]` (every thread of
    /// the process stops for a moment, at most HOTRELOAD_MAX_PAUSE_MS as the process has it).
    #[arg(long)]
    pub allow_entry_redirects: bool,
}

#[derive(Debug, Args)]
pub struct TargetFileArgs {
    /// The patch file.
    pub file: PathBuf,
    #[command(flatten)]
    pub targets: TargetArgs,
}

/// Where the fleet's state is, and which service.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// The etcd cluster's endpoints (`http://127.0.0.1:2379`), comma-separated.
    #[arg(
        long,
        value_name = "URL[,URL...]",
        value_delimiter = ',',
        required = true
    )]
    pub etcd: Vec<String>,
    /// The service: the processes that take the same patches.
    #[arg(long, value_name = "NAME")]
    pub service: String,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// A control socket of a process this agent serves (it may start later).
    #[arg(long, value_name = "SOCKET")]
    pub target: Vec<PathBuf>,
    /// A directory whose `*.sock` files are control sockets of processes this agent serves.
    #[arg(long, value_name = "DIR")]
    pub socket_dir: Option<PathBuf>,
    /// The name this host reports under (default: its host name).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Seconds the reports outlive a silent agent.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub lease_ttl: i64,
    /// Seconds between two looks at the targets when nothing changes.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub poll: f64,
    /// Where to keep the patch files handed to processes (default: a directory under the
    /// system's temporary directory).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Let this host's processes apply patches that redirect the entries of functions that are
    /// not `#[hot]` (a brief stop of every thread, bounded by HOTRELOAD_MAX_PAUSE_MS); as
    /// `apply --allow-entry-redirects`.
    #[arg(long)]
    pub allow_entry_redirects: bool,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The patch file.
    #[arg(required_unless_present = "rollback")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Return the service to the state before the last publish.
    #[arg(long, conflicts_with = "file")]
    pub rollback: bool,
    /// Batch sizes, cumulative: counts or percentages of the build's processes (`1,25%,100%`).
    #[arg(long, value_name = "LIST", default_value = "100%")]
    pub batches: String,
    /// Run after each batch (through `sh -c`, with HOTPATCH_TARGETS listing the patched sockets
    /// and HOTPATCH_PROCESSES their `host/pid`); a non-zero exit rolls the publish back.
    #[arg(long, value_name = "CMD")]
    pub health: Option<String>,
    /// Seconds to wait after each batch's health check.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub pause: f64,
    /// Seconds to wait for a batch's reports, and for etcd when it is unreachable.
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    pub timeout: f64,
    /// How to print messages.
    #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
    pub message_format: MessageFormat,
}
