//! Soak: the gateway under continuous load from many clients while the same two real patch files
//! (v2 and v3, built once: each commit migrates every session) are applied and rolled back cycle
//! after cycle through its control socket. No client may get a wrong answer or lose its
//! connection, and the process's descriptors and mappings must stay flat: the patch libraries
//! stay mapped (as `status` reports) but nothing grows per cycle. The slowest request seen while
//! a commit or rollback was in progress is printed.
//!
//! `HOTRELOAD_SOAK_CYCLES` sets the number of cycles (default 60, about a minute); the long run is
//! `HOTRELOAD_SOAK_CYCLES=500 cargo test -p hotreload-tests --test e2e -- soak --nocapture`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cargo_hotpatch::remote::client;
use hotreload_tests::{locations, Fixture, PatchReport, Profile};

use super::gateway::{version_answering, Connection, Gateway, V2, V3};

/// Clients connected through the whole soak, each with a session that every commit migrates.
const SOAK_CLIENTS: usize = 32;
/// Cycles when `HOTRELOAD_SOAK_CYCLES` is not set.
const DEFAULT_CYCLES: usize = 60;
/// Requests slower than this are kept (with when they started) to find the slowest during a commit.
const KEPT_SLOWER_THAN: Duration = Duration::from_millis(2);

/// What one client saw: requests sent, and those slower than [`KEPT_SLOWER_THAN`].
struct ClientLog {
    sent: u64,
    slow: Vec<(Instant, Duration)>,
}

/// A client sending `get` in a loop, checking every reply against what it sent.
struct LoadClient {
    /// The version of the last reply.
    version: Arc<Mutex<String>>,
    thread: JoinHandle<Result<ClientLog, String>>,
}

fn start_load_client(address: String, index: usize, stop: Arc<AtomicBool>) -> LoadClient {
    let version = Arc::new(Mutex::new(String::new()));
    let seen = Arc::clone(&version);
    let thread = std::thread::spawn(move || {
        let mut connection = Connection::open(&address);
        let user = format!("soak{index}");
        let note = format!("memo{index}");
        let hello = connection.ask(&format!("login {user}"))?;
        if hello != format!("ok v1 hello {user}") {
            return Err(format!("login: {hello}"));
        }
        connection.ask(&format!("note {note}"))?;
        let mut log = ClientLog {
            sent: 2,
            slow: Vec::new(),
        };
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let reply = connection.ask("get")?;
            let took = started.elapsed();
            log.sent += 1;
            if took > KEPT_SLOWER_THAN {
                log.slow.push((started, took));
            }
            let sent = log.sent;
            let Some(version) = version_answering(&reply, &user, sent, &note) else {
                return Err(format!(
                    "client {index}: after {sent} requests the gateway answered `{reply}`"
                ));
            };
            *seen.lock().unwrap() = version.to_owned();
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(log)
    });
    LoadClient { version, thread }
}

fn wait_until_all_see(clients: &[LoadClient], version: &str, context: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !clients
        .iter()
        .all(|c| *c.version.lock().unwrap() == version)
    {
        if let Some(i) = clients.iter().position(|c| c.thread.is_finished()) {
            panic!("client {i} stopped ({context}); it reports why when joined");
        }
        assert!(
            Instant::now() < deadline,
            "not every client saw {version} within 30 s ({context})"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What a step of a cycle sends.
enum Step<'a> {
    Apply(&'a Path),
    Rollback,
}

/// What the process holds, from `/proc` and `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resources {
    descriptors: usize,
    /// Mappings of files (libraries, memfds): anonymous ones are left out, as glibc keeps every
    /// malloc arena a new thread makes (up to eight per core) and thread stacks come and go.
    file_mappings: usize,
    /// Mappings of patch libraries (opened from memfds).
    patch_mappings: usize,
    patch_mapping_bytes: u64,
    /// `status`'s "patch code kept mapped".
    reported_mapped_bytes: u64,
}

/// What the process holds once it is idle: the descriptors are counted when the control
/// connection used last has been closed on the process's side too (its server thread closes it a
/// moment after the reply), before the `status` request that reads the mapped bytes.
fn resources(pid: u32, socket: &Path) -> Resources {
    let descriptors = idle_descriptors(pid);
    let reported_mapped_bytes = client::status(socket).unwrap().mapped_bytes;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut patch_mappings = 0;
    let mut patch_mapping_bytes = 0;
    for line in maps.lines().filter(|line| line.contains("/memfd:")) {
        let range = line.split_whitespace().next().unwrap();
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) = (
            u64::from_str_radix(start, 16).unwrap(),
            u64::from_str_radix(end, 16).unwrap(),
        );
        patch_mappings += 1;
        patch_mapping_bytes += end - start;
    }
    Resources {
        descriptors,
        file_mappings: maps.lines().filter(|line| maps_a_file(line)).count(),
        patch_mappings,
        patch_mapping_bytes,
        reported_mapped_bytes,
    }
}

/// The number of open descriptors once it has not changed for 100 ms (within 5 s).
fn idle_descriptors(pid: u32) -> usize {
    let count = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = count();
    let mut unchanged_since = Instant::now();
    while unchanged_since.elapsed() < Duration::from_millis(100) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        let now = count();
        if now != last {
            (last, unchanged_since) = (now, Instant::now());
        }
    }
    last
}

fn soak_cycles() -> usize {
    match std::env::var("HOTRELOAD_SOAK_CYCLES") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("HOTRELOAD_SOAK_CYCLES={text} is not a number of cycles")),
        Err(_) => DEFAULT_CYCLES,
    }
}

/// Builds the v2 and v3 patches once (against the running v1 build).
fn build_both(fixture: &Fixture) -> (PathBuf, PathBuf) {
    fixture.replace_file("gateway/src/lib.rs", V2);
    let v2 = fixture.build_patch("soak-v2.hotpatch");
    fixture.replace_file("gateway/src/lib.rs", V3);
    let v3 = fixture.build_patch("soak-v3.hotpatch");
    (v2, v3)
}

/// Sends `step`, checks that every session migrated `from -> to`, and returns the report and
/// when the request was in progress.
fn run_step(socket: &Path, step: &Step, (from, to): (u32, u32)) -> (PatchReport, Instant, Instant) {
    let started = Instant::now();
    let report = match step {
        Step::Apply(patch) => client::apply(socket, patch),
        Step::Rollback => client::rollback(socket),
    }
    .unwrap_or_else(|error| panic!("{from} -> {to}: {error:#}"));
    let ended = Instant::now();
    assert!(!report.already_applied, "{from} -> {to}: {report:?}");
    assert!(
        report.states.iter().any(|s| s.name == "gateway::Session"
            && (s.from, s.to, s.values) == (from, to, SOAK_CLIENTS)),
        "every session migrated {from} -> {to}: {report:?}"
    );
    (report, started, ended)
}

#[test]
fn soak_the_gateway_serves_every_client_through_many_migrating_apply_and_rollback_cycles() {
    let cycles = soak_cycles();
    let fixture = Fixture::gateway(locations!(), Profile::Dev);
    let gateway = Gateway::start(&fixture);
    let (v2, v3) = build_both(&fixture);
    let socket = fixture.socket();
    let pid = client::status(&socket).unwrap().pid;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<LoadClient> = (0..SOAK_CLIENTS)
        .map(|i| start_load_client(gateway.address.clone(), i, Arc::clone(&stop)))
        .collect();
    wait_until_all_see(&clients, "v1", "start");
    let descriptors_before = idle_descriptors(pid);
    let steps = [
        (Step::Apply(&v2), "v2", (1, 2)),
        (Step::Apply(&v3), "v3", (2, 3)),
        (Step::Rollback, "v2", (3, 2)),
        (Step::Rollback, "v1", (2, 1)),
    ];
    let soak_started = Instant::now();
    let mut windows = Vec::new();
    let mut commit_micros = Vec::new();
    let mut samples: Vec<Resources> = Vec::new();
    for cycle in 0..cycles {
        for (step, version, migration) in &steps {
            let (report, started, ended) = run_step(&socket, step, *migration);
            windows.push((started, ended));
            commit_micros.push(report.commit_us);
            wait_until_all_see(&clients, version, &format!("cycle {cycle}"));
        }
        samples.push(resources(pid, &socket));
    }
    let soak_took = soak_started.elapsed();
    let logs = stop_load_clients(&stop, clients);
    resources_stayed_flat(descriptors_before, &samples);
    report_figures(cycles, soak_took, &logs, &windows, commit_micros);
    let stderr = gateway.stderr_text();
    assert!(
        !stderr.contains("connection from"),
        "no connection ended with an error:\n{stderr}"
    );
}

/// Stops the clients; each must have run without an error.
fn stop_load_clients(stop: &AtomicBool, clients: Vec<LoadClient>) -> Vec<ClientLog> {
    stop.store(true, Ordering::Relaxed);
    clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            client
                .thread
                .join()
                .unwrap()
                .unwrap_or_else(|error| panic!("client {i} failed: {error}"))
        })
        .collect()
}

/// Whether a `/proc/PID/maps` line maps a file: it names a path (not `[heap]`, `[stack]` and
/// the like, and not nothing, as an anonymous mapping does).
fn maps_a_file(line: &str) -> bool {
    line.split_whitespace()
        .nth(5)
        .is_some_and(|path| !path.starts_with('['))
}

/// Loading the patches kept no descriptor open, and after the first cycle (both libraries loaded)
/// nothing grows: descriptors, patch mappings and what `status` reports are the same at every
/// cycle's end, the patch mappings match `status`, and the mappings of files do not trend up.
fn resources_stayed_flat(descriptors_before: usize, samples: &[Resources]) {
    let first = samples[0];
    eprintln!("soak: {descriptors_before} descriptors before, after the first cycle: {first:?}");
    assert_eq!(
        first.descriptors, descriptors_before,
        "loading and applying the patches left descriptors open"
    );
    assert!(
        first.patch_mappings > 0,
        "the patch libraries are mapped: {first:?}"
    );
    // `status` reports the libraries' file sizes; their segments are mapped page-rounded.
    let page_rounding = 4096 * first.patch_mappings as u64;
    assert!(
        first.patch_mapping_bytes <= first.reported_mapped_bytes + page_rounding,
        "no more patch code is mapped than status reports: {first:?}"
    );
    for (cycle, sample) in samples.iter().enumerate() {
        let grown = (
            sample.descriptors,
            sample.patch_mappings,
            sample.patch_mapping_bytes,
            sample.reported_mapped_bytes,
        ) != (
            first.descriptors,
            first.patch_mappings,
            first.patch_mapping_bytes,
            first.reported_mapped_bytes,
        );
        assert!(
            !grown,
            "after cycle {cycle}: {sample:?}, after the first: {first:?}"
        );
    }
    let third = samples.len().div_ceil(3);
    let early = samples[..third]
        .iter()
        .map(|s| s.file_mappings)
        .max()
        .unwrap();
    let late = samples[samples.len() - third..]
        .iter()
        .map(|s| s.file_mappings)
        .max()
        .unwrap();
    assert!(
        late <= early,
        "mappings of files grew: at most {early} in the first third of the cycles, {late} in the last"
    );
}

fn report_figures(
    cycles: usize,
    took: Duration,
    logs: &[ClientLog],
    windows: &[(Instant, Instant)],
    mut commit_micros: Vec<u64>,
) {
    let requests: u64 = logs.iter().map(|log| log.sent).sum();
    let during_commit = |(start, took): &(Instant, Duration)| {
        let end = *start + *took;
        windows.iter().any(|(from, to)| *start < *to && end > *from)
    };
    let slow = logs.iter().flat_map(|log| log.slow.iter());
    let slowest_during = slow.clone().filter(|r| during_commit(r)).map(|r| r.1).max();
    let slowest_outside = slow.filter(|r| !during_commit(r)).map(|r| r.1).max();
    commit_micros.sort_unstable();
    let median = commit_micros[commit_micros.len() / 2];
    let max = commit_micros[commit_micros.len() - 1];
    eprintln!(
        "soak: {cycles} cycles ({} commits and rollbacks) in {took:.1?}, {requests} requests from \
         {SOAK_CLIENTS} clients, no wrong answer, no dropped connection; commit median {median} us, \
         max {max} us; slowest request during a commit {slowest_during:?}, outside {slowest_outside:?} \
         (None: none slower than {KEPT_SLOWER_THAN:?})",
        windows.len()
    );
}
