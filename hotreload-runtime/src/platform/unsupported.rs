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
