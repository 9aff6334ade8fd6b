//! What `#[hot_state]` costs: access through a [`Handle`] (read, write, `lock` + `get_mut`) next to
//! a plain `std::sync::RwLock`, and the pause of migrating 1,000,000 live values up a version at
//! commit and back down at rollback.
//!
//! `cargo bench -p hotreload-runtime --bench state -- --warm-up-time 1 --measurement-time 3`
//!
//! The migration benchmarks report the pause (`CommitReport::waited`: the time every value of the
//! type is locked, the safe point included); the old values are freed after it, outside the
//! locks, and that is printed separately, with the median pause and the peak RSS.

use std::cell::RefCell;
use std::hint::black_box;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use hotreload_runtime::state::Handle;
use hotreload_runtime::{Table, Update};

/// How many live values the migration benchmarks move.
const VALUES: usize = 1_000_000;

/// The struct the access benchmarks touch, kept under its own name so the migrations below never
/// move it.
mod access {
    use hotreload_runtime::hot_state;
    use serde::{Deserialize, Serialize};

    #[hot_state(version = 1, name = "bench::Access")]
    #[derive(Serialize, Deserialize)]
    pub struct Small {
        pub id: u64,
        pub hits: u32,
        pub name: String,
    }
}

/// Version 1 of the migrated struct, as the host has it.
mod v1 {
    use hotreload_runtime::hot_state;
    use serde::{Deserialize, Serialize};

    #[hot_state(version = 1, name = "bench::Small")]
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Small {
        pub id: u64,
        pub hits: u32,
        pub name: String,
    }
}

/// Version 2, as a patch brings it: one field added.
mod v2 {
    use hotreload_runtime::hot_state;
    use hotreload_runtime::state::{Migrate, MigrationError};
    use serde::{Deserialize, Serialize};

    #[hot_state(version = 1, snapshot)]
    #[derive(Serialize, Deserialize)]
    pub struct SmallV1 {
        pub id: u64,
        pub hits: u32,
        pub name: String,
    }

    #[hot_state(version = 2, name = "bench::Small", previous = SmallV1)]
    #[derive(Serialize, Deserialize)]
    pub struct Small {
        pub id: u64,
        pub hits: u32,
        pub name: String,
        pub flags: u32,
    }

    impl Migrate<SmallV1> for Small {
        fn up(old: SmallV1) -> Result<Self, MigrationError> {
            Ok(Small {
                id: old.id,
                hits: old.hits,
                name: old.name,
                flags: 0,
            })
        }

        fn down(&self) -> Result<SmallV1, MigrationError> {
            Ok(SmallV1 {
                id: self.id,
                hits: self.hits,
                name: self.name.clone(),
            })
        }
    }
}

fn access_value() -> access::Small {
    access::Small {
        id: 42,
        hits: 0,
        name: "abcdefgh".into(),
    }
}

fn access(c: &mut Criterion) {
    let handle = Handle::new(access_value());
    let plain = RwLock::new(access_value());

    let mut group = c.benchmark_group("state_access");
    group.bench_function("hot_state_read", |b| {
        b.iter(|| black_box(&handle).read().unwrap().hits)
    });
    group.bench_function("rwlock_read", |b| {
        b.iter(|| black_box(&plain).read().unwrap().hits)
    });
    group.bench_function("hot_state_write", |b| {
        b.iter(|| {
            let mut value = black_box(&handle).write().unwrap();
            value.hits = value.hits.wrapping_add(1);
        })
    });
    group.bench_function("rwlock_write", |b| {
        b.iter(|| {
            let mut value = black_box(&plain).write().unwrap();
            value.hits = value.hits.wrapping_add(1);
        })
    });
    group.bench_function("locked_get_mut", |b| {
        b.iter(|| {
            let mut locked = black_box(&handle).lock();
            let value = locked.get_mut().unwrap();
            value.hits = value.hits.wrapping_add(1);
        })
    });
    group.finish();
}

fn small(i: usize) -> v1::Small {
    v1::Small {
        id: i as u64,
        hits: (i % 1000) as u32,
        name: format!("user{:04}", i % 10_000),
    }
}

/// Times of one side of the migration, over every commit or rollback made by the benchmarks.
#[derive(Default)]
struct Times {
    /// `CommitReport::waited`: values locked, safe point included.
    pause: Vec<Duration>,
    /// The whole call, freeing the old values included.
    call: Vec<Duration>,
}

impl Times {
    fn record(&mut self, pause: Duration, call: Duration) {
        self.pause.push(pause);
        self.call.push(call);
    }

    fn print(&self, what: &str) {
        eprintln!(
            "state_migration: {what} of {VALUES} values: median pause {:.1} ms, median call {:.1} ms (freeing the old values after the pause: ~{:.1} ms), over {} runs",
            ms(median(&self.pause)),
            ms(median(&self.call)),
            ms(median(&self.call).saturating_sub(median(&self.pause))),
            self.pause.len(),
        );
    }
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1e3
}

/// A line of `/proc/self/status` (`VmHWM`, `VmRSS`), where there is one.
fn proc_status(field: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|line| line.starts_with(field))
        .map(|line| {
            line.split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        })
}

/// Migrates every value to version 2, checking the report; returns (pause, call).
fn commit() -> (Duration, Duration) {
    let started = Instant::now();
    let report = Table::global()
        .commit(Update::new("bench::Small v2").migrate::<v2::Small>())
        .expect("commit");
    let call = started.elapsed();
    assert_eq!(report.states.len(), 1);
    assert_eq!((report.states[0].from, report.states[0].to), (1, 2));
    assert_eq!(report.states[0].values, VALUES);
    (report.waited, call)
}

/// Migrates every value back to version 1; returns (pause, call).
fn rollback() -> (Duration, Duration) {
    let started = Instant::now();
    let report = Table::global().rollback().expect("rollback");
    let call = started.elapsed();
    assert_eq!((report.states[0].from, report.states[0].to), (2, 1));
    assert_eq!(report.states[0].values, VALUES);
    (report.waited, call)
}

/// Commits and rollbacks of every value, converted by `threads` threads
/// (`HOTRELOAD_MIGRATION_THREADS`); the peak memory is the group's own.
fn migrate_group(c: &mut Criterion, handles: &[Handle<v1::Small>], threads: usize) {
    // No other thread reads the environment meanwhile; the runtime reads it at each migration.
    std::env::set_var("HOTRELOAD_MIGRATION_THREADS", threads.to_string());
    // Writing 5 to clear_refs resets the peak RSS, so each group reports its own.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let commits = RefCell::new(Times::default());
    let rollbacks = RefCell::new(Times::default());

    let mut group = c.benchmark_group(format!("state_migration_{threads}_thread"));
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("commit_1M", |b| {
        b.iter_custom(|iters| {
            let mut measured = Duration::ZERO;
            for _ in 0..iters {
                let (pause, call) = commit();
                measured += pause;
                commits.borrow_mut().record(pause, call);
                let (pause, call) = rollback();
                rollbacks.borrow_mut().record(pause, call);
            }
            measured
        })
    });
    group.bench_function("rollback_1M", |b| {
        b.iter_custom(|iters| {
            let mut measured = Duration::ZERO;
            for _ in 0..iters {
                let (pause, call) = commit();
                commits.borrow_mut().record(pause, call);
                let (pause, call) = rollback();
                measured += pause;
                rollbacks.borrow_mut().record(pause, call);
            }
            measured
        })
    });
    group.finish();

    // Every value came back as it was.
    for i in [0, VALUES / 2, VALUES - 1] {
        assert_eq!(handles[i].version(), 1);
        assert_eq!(*handles[i].read().unwrap(), small(i));
    }
    commits
        .borrow()
        .print(&format!("{threads} thread(s): commit (1 -> 2)"));
    rollbacks
        .borrow()
        .print(&format!("{threads} thread(s): rollback (2 -> 1)"));
    eprintln!(
        "state_migration: {threads} thread(s): peak RSS (VmHWM) {}",
        proc_status("VmHWM:").unwrap_or_else(|| "unknown".into()),
    );
}

fn migration(c: &mut Criterion) {
    let started = Instant::now();
    let handles: Vec<Handle<v1::Small>> = (0..VALUES).map(|i| Handle::new(small(i))).collect();
    eprintln!(
        "state_migration: {VALUES} handles stored in {:.0} ms (VmRSS {})",
        ms(started.elapsed()),
        proc_status("VmRSS:").unwrap_or_else(|| "unknown".into()),
    );

    for threads in [1, 2] {
        migrate_group(c, &handles, threads);
    }
    let started = Instant::now();
    drop(handles);
    eprintln!(
        "state_migration: {VALUES} handles dropped in {:.0} ms",
        ms(started.elapsed())
    );
}

criterion_group!(benches, access, migration);
criterion_main!(benches);
