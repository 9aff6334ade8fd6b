//! A patch's entry redirects (the manifest's `entry_redirects`): whether this apply may do them,
//! where they point in this process, what `check` expects them to cost, and how they are reported.

use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::entry::{EntryError, EntryLimits, EntryOutcome, EntryTarget};
use crate::error::Error;
use crate::platform;
use crate::wire::patch_file::PatchFile;
use crate::wire::protocol::{EntryReport, EntryStatus};

/// The environment variable that lets every apply of this process redirect entries (a production
/// process whose patch directory holds such patches, for example).
pub const ALLOW_ENTRY_REDIRECTS_ENV: &str = "HOTRELOAD_ALLOW_ENTRY_REDIRECTS";

/// Set once the process is linked to `cargo hotpatch run` or `watch`: development, where entry
/// redirects are done without asking.
static LINKED_TO_TOOL: AtomicBool = AtomicBool::new(false);

/// Records that the tool that started this process is linked to it.
pub(crate) fn mark_linked_to_tool() {
    LINKED_TO_TOOL.store(true, Ordering::Relaxed);
}

/// Whether an apply may redirect entries: asked for by the request, or the process is under the
/// tool (development), or [`ALLOW_ENTRY_REDIRECTS_ENV`] is `1`.
pub(super) fn allowed(requested: bool) -> bool {
    requested
        || LINKED_TO_TOOL.load(Ordering::Relaxed)
        || std::env::var(ALLOW_ENTRY_REDIRECTS_ENV).is_ok_and(|v| v.trim() == "1")
}

/// Refuses a patch with entry redirects that this apply may not do.
pub(super) fn check_allowed(patch: &PatchFile, requested: bool) -> Result<(), Error> {
    let functions = patch.manifest.entry_redirects.len();
    if functions == 0 || allowed(requested) {
        return Ok(());
    }
    Err(Error::EntryRedirectsNotAllowed {
        patch: patch.short_id().to_owned(),
        functions,
    })
}

/// The manifest's entry redirects in this process: executable functions and the code of the
/// loaded library opened from `library`. Each new entry must lie in the library's code.
pub(super) fn targets(patch: &PatchFile, library: &CStr) -> Result<Vec<EntryTarget>, Error> {
    let redirects = &patch.manifest.entry_redirects;
    if redirects.is_empty() {
        return Ok(Vec::new());
    }
    let refuse = |source: EntryError| Error::EntryRedirect {
        update: patch.short_id().to_owned(),
        source,
    };
    let (library_base, code) = platform::library_code(library).ok_or_else(|| {
        refuse(EntryError::Os {
            what: "finding the patch library among the loaded objects",
            error: "not loaded".to_owned(),
        })
    })?;
    let executable = platform::executable_base();
    redirects
        .iter()
        .map(|redirect| {
            let target = library_base.wrapping_add(redirect.patch_offset as usize);
            if !code
                .iter()
                .any(|&(start, end)| start <= target && target < end)
            {
                return Err(refuse(EntryError::TargetOutsideLibrary {
                    name: redirect.name.clone(),
                    offset: redirect.patch_offset,
                }));
            }
            let entry = executable.wrapping_add(redirect.host_offset as usize);
            // `#[hot]` functions keep their table path and its safe-point consistency.
            if let Some(hot) = crate::slot::registered().find(|f| f.original() as usize == entry) {
                return Err(refuse(EntryError::HotFunction {
                    name: redirect.name.clone(),
                    key: hot.key().to_string(),
                }));
            }
            Ok(EntryTarget {
                name: redirect.name.clone(),
                entry,
                size: redirect.host_size as usize,
                target,
            })
        })
        .collect()
}

/// The longest pause by default under `cargo hotpatch run` or `watch`, where a refused patch costs
/// a restart and a pause of a second is harmless.
const DEVELOPMENT_MAX_PAUSE: Duration = Duration::from_secs(1);

/// The limits of the stop: `HOTRELOAD_MAX_PAUSE_MS` if set; otherwise 100 ms, or
/// [`DEVELOPMENT_MAX_PAUSE`] in a process linked to the tool.
pub(super) fn limits() -> EntryLimits {
    let limits = EntryLimits::from_env();
    let configured = std::env::var_os(crate::entry::MAX_PAUSE_ENV).is_some();
    if configured || !LINKED_TO_TOOL.load(Ordering::Relaxed) {
        return limits;
    }
    EntryLimits {
        max_pause: DEVELOPMENT_MAX_PAUSE,
        ..limits
    }
}

/// What a commit or rollback did to entry redirects, for its report; `None` when it touched none.
pub(super) fn report(outcome: Option<&EntryOutcome>) -> Option<EntryReport> {
    let outcome = outcome?;
    let touched = outcome.redirected + outcome.written + outcome.restored + outcome.retargeted;
    (touched > 0).then(|| EntryReport {
        redirected: outcome.redirected,
        written: outcome.written,
        restored: outcome.restored,
        retargeted: outcome.retargeted,
        threads: outcome.threads,
        foreign_threads: outcome.foreign_threads,
        pause_us: outcome.pause.map(micros),
        expected_pause_us: None,
    })
}

/// The entry redirects of the process now, for `status`.
pub(super) fn status() -> EntryStatus {
    EntryStatus {
        redirected: crate::entry::redirected_entries().len(),
        last_pause_us: crate::entry::last_pause().map(micros),
    }
}

/// What applying `patch` would do to entry redirects, for `check`: how many functions it
/// redirects, and the pause expected from this process's threads now. `None` when it touches none.
pub(super) fn predict(patch: &PatchFile) -> Option<EntryReport> {
    let wanted = &patch.manifest.entry_redirects;
    let now = crate::entry::redirected_entries();
    let executable = platform::executable_base();
    let entry_of = |offset: u64| executable.wrapping_add(offset as usize);
    let is_new = |offset: u64| !now.iter().any(|t| t.entry == entry_of(offset));
    let written = wanted.iter().filter(|r| is_new(r.host_offset)).count();
    let restored = now
        .iter()
        .filter(|t| !wanted.iter().any(|r| entry_of(r.host_offset) == t.entry))
        .count();
    if wanted.is_empty() && restored == 0 {
        return None;
    }
    let (threads, running) = thread_counts();
    let foreign_threads = platform::foreign_thread_count();
    let stops = written + restored > 0;
    Some(EntryReport {
        redirected: wanted.len(),
        written,
        restored,
        retargeted: wanted.len() - written,
        threads,
        foreign_threads,
        pause_us: None,
        // Threads that block the stop signal are read, not signalled.
        expected_pause_us: stops.then(|| {
            micros(expected_pause(
                threads.saturating_sub(foreign_threads),
                running,
            ))
        }),
    })
}

/// The pause a stop of `threads` threads, `running` of them runnable, is expected to take: about
/// 15 µs per thread to signal and park (measured: 2 idle threads 28 µs, 64 idle 0.6–1 ms), plus,
/// for runnable threads beyond the cores, a scheduler time slice (4 ms) per core's worth of them
/// (they must each run the signal handler).
pub(super) fn expected_pause(threads: usize, running: usize) -> Duration {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = Duration::from_micros(15) * threads as u32;
    let queued = running.saturating_sub(cores) as u32;
    Duration::from_micros(50) + per_thread + Duration::from_millis(4) * queued / cores as u32
}

/// The other threads of the process, and how many of them are runnable now.
fn thread_counts() -> (usize, usize) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0, 0);
    };
    let mut threads = 0usize;
    let mut running = 0usize;
    for task in tasks.flatten() {
        threads += 1;
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // The state follows the name, which is in parentheses and may hold spaces.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if state == Some("R") {
            running += 1;
        }
    }
    // This thread is not stopped (and is running now).
    (threads.saturating_sub(1), running.saturating_sub(1))
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
