//! The control channel of a running process: how `cargo hotpatch` talks to it.

pub mod protocol;
