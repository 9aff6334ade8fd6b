//! Which threads run a patch's code: for `status` (threads inside patched code for longer than
//! `HOTRELOAD_STUCK_THREAD_MS`, default 10,000) and `rollback` (threads still running the code it
//! removed). Each thread's instruction is sampled a few times through a signal (see
//! `platform::threads`); the hot call path is not involved. A thread blocked in a system call
//! made from patched code is sampled outside it, so this finds threads that run (spin in) patched
//! code, not every frame of it.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::platform;
use crate::sync::lock;
use crate::wire::protocol::ThreadInPatch;

/// How many times each thread is sampled, and how far apart.
const SAMPLES: usize = 3;
const APART: Duration = Duration::from_millis(5);
/// The threshold when `HOTRELOAD_STUCK_THREAD_MS` is not set.
const DEFAULT_THRESHOLD: Duration = Duration::from_secs(10);

/// When each (thread, patch) was first seen running the patch's code, at consecutive statuses.
static FIRST_SEEN: Mutex<BTreeMap<(i32, String), Instant>> = Mutex::new(BTreeMap::new());

/// The threads running code of the patch libraries `libraries` (patch id, path opened from).
pub(super) fn threads_in(libraries: &[(String, CString)]) -> Vec<ThreadInPatch> {
    if libraries.is_empty() {
        return Vec::new();
    }
    let paths: Vec<&CStr> = libraries.iter().map(|(_, path)| path.as_c_str()).collect();
    let ranges = platform::code_ranges(&paths);
    let mut found: BTreeMap<i32, ThreadInPatch> = BTreeMap::new();
    for sample in 0..SAMPLES {
        if sample > 0 {
            std::thread::sleep(APART);
        }
        for thread in platform::sample_threads() {
            let Some(&(index, _, _)) = ranges
                .iter()
                .find(|&&(_, start, end)| thread.address >= start && thread.address < end)
            else {
                continue;
            };
            found.entry(thread.tid).or_insert_with(|| ThreadInPatch {
                tid: thread.tid,
                name: platform::thread_name(thread.tid),
                patch: libraries[index].0.clone(),
                function: platform::symbol_at(thread.address),
                for_ms: 0,
            });
        }
    }
    found.into_values().collect()
}

/// The threads seen in patched code at this call and every call since at least the threshold.
pub(super) fn long_running(libraries: &[(String, CString)]) -> Vec<ThreadInPatch> {
    let now = Instant::now();
    let threshold = std::env::var("HOTRELOAD_STUCK_THREAD_MS")
        .ok()
        .and_then(|ms| ms.trim().parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_THRESHOLD);
    let seen = threads_in(libraries);
    let mut first_seen = lock(&FIRST_SEEN);
    first_seen.retain(|(tid, patch), _| seen.iter().any(|t| t.tid == *tid && t.patch == *patch));
    seen.into_iter()
        .filter_map(|mut thread| {
            let since = *first_seen
                .entry((thread.tid, thread.patch.clone()))
                .or_insert(now);
            let running_for = now.duration_since(since);
            thread.for_ms = u64::try_from(running_for.as_millis()).unwrap_or(u64::MAX);
            (running_for >= threshold).then_some(thread)
        })
        .collect()
}
