//! The depot server. See the README ("A realistic service") for how to talk to it.

use std::process::ExitCode;

use depot::{Config, Server};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

fn main() -> ExitCode {
    hotreload_runtime::init();
    let config = match Config::from_process() {
        Ok(Some(config)) => config,
        Ok(None) => {
            println!("{}", depot::config::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("depot: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("depot: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("depot: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> std::io::Result<()> {
    let server = Server::bind(config).await?;
    // The first line on stdout says where it listens (port 0 picks one).
    println!("depot listening on {}", server.local_addr()?);
    server.run(depot::server::shutdown_signal()).await
}

/// Logs to stderr, filtered by `RUST_LOG` (`info,depot=debug`); `info` by default.
fn init_logging() {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) => directives.parse::<Targets>().unwrap_or_else(|error| {
            eprintln!("depot: RUST_LOG={directives:?} is not valid ({error}); using `info`");
            Targets::new().with_default(LevelFilter::INFO)
        }),
        Err(_) => Targets::new().with_default(LevelFilter::INFO),
    };
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
}
