//! A cross-process lock on a fixture target directory.
//!
//! A fixture target directory holds the base record and the control socket of the app running
//! on it, so one test or benchmark at a time may use it, whichever process it runs in: the tests
//! of the one `e2e` binary run on several threads, and a benchmark or another `cargo test` may
//! run at the same time. `flock(2)` through `libc`: std's `File::lock` needs Rust 1.89 and the
//! workspace's `rust-version` is 1.85. A `flock` belongs to its open file, so two threads of one
//! process that each open the lock file exclude each other too; the kernel drops it when the
//! file is closed, also when the holder dies.

use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::path::Path;

/// Held while it lives: the exclusive `flock` of `<target dir>.lock`.
#[derive(Debug)]
pub struct TargetLock {
    _file: File,
}

impl TargetLock {
    /// Waits until no one else holds `target`, then holds it; says so on stderr if it waits.
    pub fn acquire(target: &Path) -> Self {
        std::fs::create_dir_all(target).expect("creating the fixture target directory");
        let path = target.with_extension("lock");
        let file = File::create(&path)
            .unwrap_or_else(|error| panic!("creating {}: {error}", path.display()));
        // SAFETY: `flock` on a file descriptor this function owns; the lock lives as long as
        // the file, which the returned value keeps.
        let locked = |flags| unsafe { libc::flock(file.as_raw_fd(), flags) } == 0;
        if !locked(libc::LOCK_EX | libc::LOCK_NB) {
            eprintln!(
                "waiting for another test or benchmark to release {}",
                path.display()
            );
            assert!(locked(libc::LOCK_EX), "locking {}", path.display());
        }
        TargetLock { _file: file }
    }
}
