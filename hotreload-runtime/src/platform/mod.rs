//! What live patching needs from the operating system: the executable's build id and a way to
//! open a library from bytes in memory, and redirecting functions' entries (`entry_jump/`, x86-64
//! only). Linux only for now; elsewhere every entry point says so.

#[cfg(target_os = "linux")]
mod cells;
#[cfg(target_os = "linux")]
mod crash_signals;
#[cfg(target_os = "linux")]
pub(crate) use crash_signals::{process_alive, record_crashes_at, stop_recording_crashes};
pub(crate) mod entry_types;
pub use entry_types::*;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod entry_jump;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) use entry_jump::{
    foreign_thread_count, last_pause, redirect_entries, redirected_entries,
};
#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
mod entry_unsupported;
#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
pub(crate) use entry_unsupported::{
    foreign_thread_count, last_pause, redirect_entries, redirected_entries,
};
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::{open_library, own_build_id, OpenError, OpenLibrary};
#[cfg(target_os = "linux")]
mod modules;
#[cfg(target_os = "linux")]
mod threads;
#[cfg(target_os = "linux")]
pub(crate) use modules::{
    code_ranges, executable_base, executable_layout, library_code, ExecutableLayout,
};
#[cfg(target_os = "linux")]
pub(crate) use threads::{sample_threads, symbol_at, thread_name};

#[cfg(not(target_os = "linux"))]
mod unsupported;
#[cfg(not(target_os = "linux"))]
pub(crate) use unsupported::{
    code_ranges, executable_base, executable_layout, library_code, open_library, own_build_id,
    process_alive, record_crashes_at, sample_threads, stop_recording_crashes, symbol_at,
    thread_name, ExecutableLayout, OpenError, OpenLibrary,
};
