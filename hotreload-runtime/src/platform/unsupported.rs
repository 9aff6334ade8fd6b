//! Stubs for platforms live patching does not support yet: the workspace compiles, and every
//! attempt to patch says why it cannot.

use crate::error::Error;

/// Never constructed here.
pub(crate) struct OpenLibrary {
    pub(crate) path: std::ffi::CString,
    pub(crate) mapped_bytes: u64,
}

/// Why a library could not be opened (here: always the platform).
pub(crate) enum OpenError {
    /// Never constructed here.
    #[allow(dead_code)]
    OutOfDescriptors(String),
    /// Live patching is not supported on this platform.
    Failed(String),
}

fn unsupported() -> Error {
    Error::Unsupported {
        os: std::env::consts::OS,
    }
}

pub(crate) fn own_build_id() -> Result<&'static str, Error> {
    Err(unsupported())
}

pub(crate) fn open_library(
    _name: &str,
    _bytes: &[u8],
    _redirects: &[crate::wire::patch_file::StaticRedirect],
    _earlier: &std::collections::BTreeMap<String, std::ffi::CString>,
) -> Result<OpenLibrary, OpenError> {
    Err(OpenError::Failed(unsupported().to_string()))
}

pub(crate) fn record_crashes_at(_mark: &std::path::Path) -> Result<(), String> {
    Err(unsupported().to_string())
}

pub(crate) fn stop_recording_crashes() {}

pub(crate) fn process_alive(_pid: u32) -> bool {
    true
}

/// Never constructed here.
pub(crate) struct ThreadAt {
    pub(crate) tid: i32,
    pub(crate) address: usize,
}

pub(crate) fn sample_threads() -> Vec<ThreadAt> {
    Vec::new()
}

pub(crate) fn code_ranges(_paths: &[&std::ffi::CStr]) -> Vec<(usize, usize, usize)> {
    Vec::new()
}

pub(crate) fn symbol_at(_address: usize) -> Option<String> {
    None
}

pub(crate) fn thread_name(_tid: i32) -> String {
    String::new()
}

/// What the executable maps; nothing here.
#[derive(Debug, Default)]
pub(crate) struct ExecutableLayout {
    pub(crate) segments: Vec<(u64, u64)>,
    pub(crate) tls_len: u64,
}

pub(crate) fn executable_layout() -> ExecutableLayout {
    ExecutableLayout::default()
}

pub(crate) fn executable_base() -> usize {
    0
}

pub(crate) fn library_code(_path: &std::ffi::CStr) -> Option<(usize, Vec<(usize, usize)>)> {
    None
}
