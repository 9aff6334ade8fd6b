//! Documentation only: how to structure an app for live patching, what a patch cannot do, what
//! it costs, and how changed functions that are not `#[hot]` take effect.

pub mod entry_redirects;
pub mod limitations;
pub mod patterns;
pub mod performance;
