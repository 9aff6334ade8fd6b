//! Documentation only: how to structure an app for live patching, what a patch cannot do, and
//! what it costs.

pub mod limitations;
pub mod patterns;
pub mod performance;
