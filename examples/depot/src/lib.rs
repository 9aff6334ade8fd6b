//! depot: an in-memory key-value store, job queue and pub-sub server over TCP, written as a
//! patchable tokio service.
//!
//! - [`protocol`]: the line protocol (text or JSON requests, one reply line each);
//! - [`handlers`]: the `#[hot]` request handlers, the code a patch replaces;
//! - [`session`]: the per-connection `#[hot_state]` sessions, which survive patches;
//! - [`connection`]: each connection's state machine; [`server`]: accepting and shutting down;
//! - [`store`], [`queue`], [`pubsub`]: the data; [`tasks`]: sweeping, metrics, snapshots;
//! - [`util`]: generic helpers (retry with backoff, a keyed rate limiter, time).
//!
//! `main.rs` only reads the configuration, sets up logging and runs a [`Server`].

pub mod client;
pub mod config;
pub mod connection;
pub mod error;
pub mod handlers;
pub mod metrics;
pub mod protocol;
pub mod pubsub;
pub mod queue;
pub mod server;
pub mod service;
pub mod session;
pub mod store;
pub mod tasks;
pub mod util;

pub use config::Config;
pub use error::DepotError;
pub use server::Server;
pub use service::Depot;
