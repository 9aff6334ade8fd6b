//! The server's settings: defaults, then a JSON file (`--config FILE`), then environment
//! variables (`DEPOT_*`), then command-line flags, each overriding the one before.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::util::backoff::{Backoff, RetryPolicy};
use crate::util::rate::RateSettings;

/// Everything the server can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where to listen; port 0 picks a free one (the first line on stdout says which).
    pub listen: String,
    pub max_connections: usize,
    /// A connection silent for this long is closed; 0 never.
    pub idle_timeout_ms: u64,
    /// Longest request line accepted.
    pub max_line_bytes: usize,
    /// A token clients must give with `AUTH` before anything else; none lets everyone in.
    pub auth_token: Option<String>,
    pub store: StoreConfig,
    pub queue: QueueConfig,
    pub rate: RateSettings,
    pub sweep_interval_ms: u64,
    /// How often the metrics are logged; 0 never.
    pub metrics_interval_ms: u64,
    pub snapshot: SnapshotConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:7979".to_owned(),
            max_connections: 1_024,
            idle_timeout_ms: 300_000,
            max_line_bytes: 64 * 1024,
            auth_token: None,
            store: StoreConfig::default(),
            queue: QueueConfig::default(),
            rate: RateSettings::default(),
            sweep_interval_ms: 250,
            metrics_interval_ms: 60_000,
            snapshot: SnapshotConfig::default(),
        }
    }
}

/// The key-value store's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub capacity: usize,
    /// Time to live of keys set without one; none keeps them.
    pub default_ttl_ms: Option<u64>,
    /// Expired keys removed per sweep, at most.
    pub sweep_batch: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            capacity: 100_000,
            default_ttl_ms: None,
            sweep_batch: 1_000,
        }
    }
}

impl StoreConfig {
    pub fn default_ttl(&self) -> Option<Duration> {
        self.default_ttl_ms.map(Duration::from_millis)
    }
}

/// The job queues' rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// How long a reserved job stays with its worker before it is given to another.
    pub visibility_timeout_ms: u64,
    /// Tries of a job pushed without its own limit.
    pub max_attempts: u32,
    pub max_jobs_per_queue: usize,
    /// Delay before a failed job is tried again.
    pub backoff: Backoff,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            visibility_timeout_ms: 30_000,
            max_attempts: 5,
            max_jobs_per_queue: 100_000,
            backoff: Backoff {
                initial_ms: 1_000,
                max_ms: 300_000,
                jitter_percent: 10,
            },
        }
    }
}

/// Saving the store and the queues to a file, and loading them at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    /// The file; none disables snapshots.
    pub path: Option<PathBuf>,
    pub interval_ms: u64,
    /// Retries of a failed write.
    pub retry: RetryPolicy,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            path: Some(std::env::temp_dir().join("depot").join("snapshot.json")),
            interval_ms: 30_000,
            retry: RetryPolicy::default(),
        }
    }
}

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{name}={value:?} is not valid: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
    #[error("unknown argument `{0}`; run with --help for the accepted ones")]
    UnknownArgument(String),
    #[error("`{0}` needs a value")]
    MissingValue(String),
}

/// What `--help` prints.
pub const USAGE: &str = "\
depot: an in-memory key-value store, job queue and pub-sub server

usage: depot [--config FILE] [--listen ADDR] [--snapshot FILE | --no-snapshot] [--auth TOKEN]

environment: DEPOT_LISTEN, DEPOT_CONFIG, DEPOT_SNAPSHOT (empty: none), DEPOT_AUTH_TOKEN,
             DEPOT_MAX_CONNECTIONS, DEPOT_IDLE_TIMEOUT_MS, DEPOT_SWEEP_INTERVAL_MS,
             DEPOT_METRICS_INTERVAL_MS, DEPOT_SNAPSHOT_INTERVAL_MS, RUST_LOG (e.g. info,depot=debug)";

/// Where a setting came from, for error messages.
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Config {
    /// The configuration of this process: its arguments and environment. `Ok(None)` means
    /// `--help` was asked for.
    pub fn from_process() -> Result<Option<Config>, ConfigError> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        Config::load(&args, &|name| std::env::var(name).ok())
    }

    /// Builds the configuration from `args` and the variables `env` looks up.
    pub fn load(args: &[String], env: Lookup<'_>) -> Result<Option<Config>, ConfigError> {
        let flags = Flags::parse(args)?;
        if flags.help {
            return Ok(None);
        }
        let file = flags.config.clone().or_else(|| env("DEPOT_CONFIG"));
        let mut config = match file {
            Some(path) => Config::from_file(PathBuf::from(path))?,
            None => Config::default(),
        };
        config.apply_env(env)?;
        flags.apply(&mut config);
        config.validate()?;
        Ok(Some(config))
    }

    fn from_file(path: PathBuf) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ConfigError::Parse { path, source })
    }

    fn apply_env(&mut self, env: Lookup<'_>) -> Result<(), ConfigError> {
        if let Some(listen) = env("DEPOT_LISTEN") {
            self.listen = listen;
        }
        if let Some(path) = env("DEPOT_SNAPSHOT") {
            self.snapshot.path = (!path.is_empty()).then(|| PathBuf::from(path));
        }
        if let Some(token) = env("DEPOT_AUTH_TOKEN") {
            self.auth_token = (!token.is_empty()).then_some(token);
        }
        number(env, "DEPOT_MAX_CONNECTIONS", &mut self.max_connections)?;
        number(env, "DEPOT_IDLE_TIMEOUT_MS", &mut self.idle_timeout_ms)?;
        number(env, "DEPOT_SWEEP_INTERVAL_MS", &mut self.sweep_interval_ms)?;
        number(
            env,
            "DEPOT_METRICS_INTERVAL_MS",
            &mut self.metrics_interval_ms,
        )?;
        number(
            env,
            "DEPOT_SNAPSHOT_INTERVAL_MS",
            &mut self.snapshot.interval_ms,
        )?;
        Ok(())
    }

    /// Refuses settings the server cannot run with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |name: &str, value: &dyn std::fmt::Debug, reason: &str| {
            Err(ConfigError::Invalid {
                name: name.to_owned(),
                value: format!("{value:?}"),
                reason: reason.to_owned(),
            })
        };
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return invalid(
                "listen",
                &self.listen,
                "expected IP:PORT, e.g. 127.0.0.1:7979",
            );
        }
        if self.max_connections == 0 {
            return invalid("max_connections", &0, "at least 1");
        }
        if self.max_line_bytes < 64 {
            return invalid("max_line_bytes", &self.max_line_bytes, "at least 64");
        }
        if self.sweep_interval_ms == 0 {
            return invalid("sweep_interval_ms", &0, "at least 1");
        }
        if self.snapshot.path.is_some() && self.snapshot.interval_ms == 0 {
            return invalid(
                "snapshot.interval_ms",
                &0,
                "at least 1, or no snapshot path",
            );
        }
        if !(self.rate.per_second.is_finite() && self.rate.per_second >= 0.0) {
            return invalid("rate.per_second", &self.rate.per_second, "a number >= 0");
        }
        Ok(())
    }

    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.sweep_interval_ms)
    }

    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_ms > 0).then(|| Duration::from_millis(self.idle_timeout_ms))
    }
}

fn number<T: std::str::FromStr>(
    env: Lookup<'_>,
    name: &str,
    into: &mut T,
) -> Result<(), ConfigError>
where
    T::Err: std::fmt::Display,
{
    if let Some(value) = env(name) {
        *into = value
            .parse()
            .map_err(|error: T::Err| ConfigError::Invalid {
                name: name.to_owned(),
                value: value.clone(),
                reason: error.to_string(),
            })?;
    }
    Ok(())
}

/// The command line, parsed.
#[derive(Debug, Default)]
struct Flags {
    help: bool,
    config: Option<String>,
    listen: Option<String>,
    snapshot: Option<Option<PathBuf>>,
    auth: Option<String>,
}

impl Flags {
    fn parse(args: &[String]) -> Result<Flags, ConfigError> {
        let mut flags = Flags::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next().cloned())
                    .ok_or_else(|| ConfigError::MissingValue(name.to_owned()))
            };
            match name {
                "-h" | "--help" => flags.help = true,
                "--config" => flags.config = Some(value()?),
                "--listen" => flags.listen = Some(value()?),
                "--snapshot" => flags.snapshot = Some(Some(PathBuf::from(value()?))),
                "--no-snapshot" => flags.snapshot = Some(None),
                "--auth" => flags.auth = Some(value()?),
                _ => return Err(ConfigError::UnknownArgument(arg.clone())),
            }
        }
        Ok(flags)
    }

    fn apply(self, config: &mut Config) {
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(snapshot) = self.snapshot {
            config.snapshot.path = snapshot;
        }
        if let Some(auth) = self.auth {
            config.auth_token = Some(auth);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(args: &[&str], env: &[(&str, &str)]) -> Result<Option<Config>, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Config::load(&args, &|name| env.get(name).cloned())
    }

    #[test]
    fn flags_override_the_environment() {
        let config = load(
            &["--listen", "127.0.0.1:0", "--no-snapshot"],
            &[
                ("DEPOT_LISTEN", "127.0.0.1:1"),
                ("DEPOT_MAX_CONNECTIONS", "7"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:0");
        assert_eq!(config.max_connections, 7);
        assert_eq!(config.snapshot.path, None);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let error = load(&[], &[("DEPOT_IDLE_TIMEOUT_MS", "soon")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "DEPOT_IDLE_TIMEOUT_MS=\"soon\" is not valid: invalid digit found in string"
        );
        let error = load(&["--listen=nowhere"], &[]).unwrap_err();
        assert!(error.to_string().contains("expected IP:PORT"), "{error}");
        let error = load(&["--verbose"], &[]).unwrap_err();
        assert!(matches!(error, ConfigError::UnknownArgument(_)));
        let error = load(&["--config"], &[]).unwrap_err();
        assert!(matches!(error, ConfigError::MissingValue(_)));
    }

    #[test]
    fn a_config_file_fills_in_what_it_names() {
        let dir = std::env::temp_dir().join(format!("depot-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("depot.json");
        std::fs::write(
            &file,
            r#"{"max_connections": 3, "queue": {"max_attempts": 9}}"#,
        )
        .unwrap();
        let config = load(&["--config", file.to_str().unwrap()], &[])
            .unwrap()
            .unwrap();
        assert_eq!(config.max_connections, 3);
        assert_eq!(config.queue.max_attempts, 9);
        assert_eq!(config.queue.visibility_timeout_ms, 30_000);
        std::fs::write(&file, r#"{"max_conections": 3}"#).unwrap();
        let error = load(&["--config", file.to_str().unwrap()], &[]).unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn help_is_not_an_error() {
        assert!(load(&["--help"], &[]).unwrap().is_none());
    }
}
