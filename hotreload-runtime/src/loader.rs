//! Reading a patch file, opening a patch library and finding the hot functions it registered.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{self, Read as _};
use std::path::Path;

use crate::error::Error;
use crate::platform::{self, OpenError, OpenLibrary};
use crate::slot::{self, HotFunction};
use crate::state::{self, StateType};
use crate::wire::patch_file::StaticRedirect;

/// The largest patch file read: a patch library is a few megabytes at most, and the bytes are
/// held in memory while they are verified.
pub(crate) const MAX_PATCH_FILE_BYTES: u64 = 256 << 20;

/// Reads the patch file at `path`: only a regular file of at most [`MAX_PATCH_FILE_BYTES`].
/// It is opened without blocking, so a named pipe with no writer cannot hold the caller, and its
/// size is checked before anything is read, so a device that never ends (`/dev/zero`) cannot
/// exhaust memory. The tool reads patch files with it too.
pub fn read_patch_file(path: &Path) -> Result<Vec<u8>, Error> {
    let failed = |source: io::Error| match source.raw_os_error() {
        #[cfg(unix)]
        Some(libc::EMFILE | libc::ENFILE) => {
            out_of_descriptors(path.display().to_string(), source.to_string())
        }
        _ => Error::Read {
            path: path.to_owned(),
            source,
        },
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path).map_err(failed)?;
    let metadata = file.metadata().map_err(failed)?;
    if !metadata.is_file() {
        return Err(failed(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "it is {}, not a regular file; give the path of a patch file",
                file_kind(&metadata.file_type())
            ),
        )));
    }
    let too_big = |size: u64| {
        failed(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it holds {size} bytes or more, more than the {MAX_PATCH_FILE_BYTES} bytes a patch file may have"),
        ))
    };
    if metadata.len() > MAX_PATCH_FILE_BYTES {
        return Err(too_big(metadata.len()));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    // The file may grow while it is read: read one byte past the cap to notice.
    file.take(MAX_PATCH_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.len() as u64 > MAX_PATCH_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

fn file_kind(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if kind.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

/// A loaded patch library and the registrations its constructors added.
pub(crate) struct Loaded {
    /// Kept open for the rest of the process.
    pub(crate) library: OpenLibrary,
    /// The registrations the library added, in registration order.
    pub(crate) registrations: Vec<&'static HotFunction>,
    /// The `#[hot_state]` types the library registered.
    pub(crate) states: Vec<&'static StateType>,
}

/// Opens the verified library `bytes` of patch `short_id` and collects the `#[hot]` registrations
/// its constructors added to the process's registry (the same one the binary's use).
///
/// Callers serialise loads, so the registrations between the newest one before and the head of
/// the registry after are exactly this library's.
pub(crate) fn load(
    short_id: &str,
    bytes: &[u8],
    redirects: &[StaticRedirect],
    earlier: &BTreeMap<String, CString>,
) -> Result<Loaded, Error> {
    let newest_before = slot::registered().next();
    let newest_state_before = state::registered().next();
    let library = platform::open_library(short_id, bytes, redirects, earlier).map_err(|error| {
        let patch = short_id.to_owned();
        match error {
            OpenError::OutOfDescriptors(reason) => out_of_descriptors(patch, reason),
            OpenError::Failed(reason) => Error::Load { patch, reason },
        }
    })?;
    // inventory prepends: everything before the former head is new.
    let mut registrations: Vec<&'static HotFunction> = slot::registered()
        .take_while(|f| !newest_before.is_some_and(|before| std::ptr::eq(before, *f)))
        .collect();
    registrations.reverse();
    let mut states: Vec<&'static StateType> = state::registered()
        .take_while(|t| !newest_state_before.is_some_and(|before| std::ptr::eq(before, *t)))
        .collect();
    states.reverse();
    tracing::debug!(
        patch = short_id,
        hot_functions = registrations.len(),
        states = states.len(),
        bytes = library.mapped_bytes,
        "patch library loaded"
    );
    Ok(Loaded {
        library,
        registrations,
        states,
    })
}

fn out_of_descriptors(patch: String, reason: String) -> Error {
    Error::OutOfDescriptors {
        patch,
        reason,
        open: open_descriptors(),
        limit: descriptor_limit(),
    }
}

/// How many descriptors the process has open, from `/proc/self/fd` (0 where there is none).
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |entries| entries.count())
}

/// The process's soft limit on open descriptors (`RLIMIT_NOFILE`); 0 if unknown.
fn descriptor_limit() -> u64 {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is valid for writes for the call.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            return limit.rlim_cur;
        }
    }
    0
}
