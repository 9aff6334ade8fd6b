//! Talking to running processes: the JSON-lines codec of the control protocol, typed calls to a
//! process's control socket, and the socket an app started by `run` or `watch` connects back to.
//! It knows nothing of subcommands or of how reports are printed.
//!
//! The codec is public so that the end-to-end kit speaks the protocol through the same code.

pub(crate) mod app_link;
pub mod client;
pub mod codec;
