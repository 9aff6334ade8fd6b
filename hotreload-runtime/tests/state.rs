//! `#[hot_state]` in one process: storage, version-checked access, migrations up and down at
//! commit and rollback, all or nothing. Two versions of a type are two Rust types kept under one
//! name (`#[hot_state(name = ..)]`), as the host's and a patch's copies are.

use std::sync::{Mutex, MutexGuard};

use hotreload_runtime::state::{Handle, Migrate, MigrationError, Singleton, StateError};
use hotreload_runtime::{hot_state, Error, Table, Update};
use serde::{Deserialize, Serialize};

/// Tests of this file share the process's one table (rollback undoes the last update): they take
/// turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Version 1 of a session, as the host has it.
mod host {
    use super::*;

    #[hot_state(version = 1, name = "tests::Session")]
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Session {
        pub user: String,
        pub hits: u32,
        pub nick: String,
        pub legacy: bool,
    }
}

/// Version 2, as a patch brings it: a field added with a default (`tier`), one removed
/// (`legacy`), one renamed (`nick` to `display_name`), one whose type changed (`hits`: u32 to u64).
mod patched {
    use super::*;

    #[hot_state(version = 1, snapshot)]
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct SessionV1 {
        pub user: String,
        pub hits: u32,
        pub nick: String,
        pub legacy: bool,
    }

    #[hot_state(version = 2, name = "tests::Session", previous = SessionV1)]
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Session {
        pub user: String,
        pub hits: u64,
        pub display_name: String,
        pub tier: Tier,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
    pub enum Tier {
        Free,
        Paid,
    }

    impl Migrate<SessionV1> for Session {
        fn up(old: SessionV1) -> Result<Self, MigrationError> {
            if old.user == "refuse-up" {
                return Err(MigrationError::new("this user cannot be migrated"));
            }
            if old.user == "panic-up" {
                panic!("migration bug");
            }
            Ok(Session {
                user: old.user,
                hits: old.hits.into(),
                display_name: old.nick,
                tier: Tier::Free,
            })
        }

        fn down(&self) -> Result<SessionV1, MigrationError> {
            Ok(SessionV1 {
                user: self.user.clone(),
                hits: u32::try_from(self.hits).map_err(|_| {
                    MigrationError::new(format_args!("{} hits do not fit version 1", self.hits))
                })?,
                nick: self.display_name.clone(),
                legacy: false,
            })
        }
    }
}

/// Version 3, two patches later: versions 1 and 2 chain through snapshots.
mod patched_twice {
    use super::*;

    #[hot_state(version = 1, snapshot)]
    #[derive(Serialize, Deserialize)]
    pub struct SessionV1 {
        pub user: String,
        pub hits: u32,
        pub nick: String,
        pub legacy: bool,
    }

    #[hot_state(version = 2, snapshot, previous = SessionV1)]
    #[derive(Serialize, Deserialize)]
    pub struct SessionV2 {
        pub user: String,
        pub hits: u64,
        pub display_name: String,
        pub tier: String,
    }

    impl Migrate<SessionV1> for SessionV2 {
        fn up(old: SessionV1) -> Result<Self, MigrationError> {
            Ok(SessionV2 {
                user: old.user,
                hits: old.hits.into(),
                display_name: old.nick,
                tier: "Free".into(),
            })
        }
        fn down(&self) -> Result<SessionV1, MigrationError> {
            Ok(SessionV1 {
                user: self.user.clone(),
                hits: self.hits as u32,
                nick: self.display_name.clone(),
                legacy: false,
            })
        }
    }

    #[hot_state(version = 3, name = "tests::Session", previous = SessionV2)]
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub struct Session {
        pub user: String,
        pub hits: u64,
        pub display_name: String,
        pub tier: String,
        pub visits: Vec<u64>,
    }

    impl Migrate<SessionV2> for Session {
        fn up(old: SessionV2) -> Result<Self, MigrationError> {
            Ok(Session {
                user: old.user,
                hits: old.hits,
                display_name: old.display_name,
                tier: old.tier,
                visits: Vec::new(),
            })
        }
        fn down(&self) -> Result<SessionV2, MigrationError> {
            Ok(SessionV2 {
                user: self.user.clone(),
                hits: self.hits,
                display_name: self.display_name.clone(),
                tier: self.tier.clone(),
            })
        }
    }
}

fn v1(user: &str, hits: u32) -> host::Session {
    host::Session {
        user: user.into(),
        hits,
        nick: format!("{user}!"),
        legacy: true,
    }
}

/// Sessions of version 1, freed (and the table rolled back to where it was) by the caller.
fn sessions(users: &[&str]) -> Vec<Handle<host::Session>> {
    users.iter().map(|u| Handle::new(v1(u, 7))).collect()
}

fn as_v2(handle: &Handle<host::Session>) -> &Handle<patched::Session> {
    // SAFETY: a handle's layout does not depend on its type parameter; this is what a patch's
    // code does when the host hands it `&Handle<Session>` compiled against another version.
    unsafe { &*(handle as *const Handle<host::Session>).cast() }
}

fn as_v3(handle: &Handle<host::Session>) -> &Handle<patched_twice::Session> {
    // SAFETY: as for `as_v2`.
    unsafe { &*(handle as *const Handle<host::Session>).cast() }
}

#[test]
fn access_checks_the_version_and_values_survive_a_migration_up_and_down() {
    let _turn = serial();
    let handles = sessions(&["ada", "grace"]);
    handles[0].write().unwrap().hits += 1;
    assert_eq!(handles[0].read().unwrap().hits, 8);
    assert_eq!(handles[0].version(), 1);

    let report = Table::global()
        .commit(Update::new("session v2").migrate::<patched::Session>())
        .unwrap();
    assert_eq!(report.states.len(), 1);
    assert_eq!(report.states[0].name, "tests::Session");
    assert_eq!((report.states[0].from, report.states[0].to), (1, 2));
    assert!(report.states[0].values >= 2);

    // Old code gets a clear error, never a misread value.
    let error = handles[0].read().map(|_| ()).unwrap_err();
    assert_eq!(
        error,
        StateError::Version {
            name: "tests::Session",
            code_version: 1,
            value_version: 2
        }
    );
    assert!(error
        .to_string()
        .contains("`tests::Session` is at version 2"));
    assert!(error.to_string().contains("compiled against version 1"));

    // New code sees every field carried over: added with a default, renamed, retyped; the
    // removed one is gone.
    let ada = as_v2(&handles[0]).read().unwrap().clone();
    assert_eq!(
        ada,
        patched::Session {
            user: "ada".into(),
            hits: 8,
            display_name: "ada!".into(),
            tier: patched::Tier::Free,
        }
    );
    as_v2(&handles[1]).write().unwrap().tier = patched::Tier::Paid;
    as_v2(&handles[1]).write().unwrap().hits = 40;

    // Old code storing a new value has it migrated to the version values are kept at.
    let late = Handle::new(v1("late", 1));
    assert_eq!(late.version(), 2);
    assert_eq!(as_v2(&late).read().unwrap().display_name, "late!");

    // Rollback migrates down: what version 1 can hold comes back.
    let report = Table::global().rollback().unwrap();
    assert_eq!((report.states[0].from, report.states[0].to), (2, 1));
    assert_eq!(
        *handles[1].read().unwrap(),
        host::Session {
            user: "grace".into(),
            hits: 40,
            nick: "grace!".into(),
            legacy: false,
        }
    );
    assert!(as_v2(&handles[1]).read().is_err());
    assert_eq!(late.read().unwrap().user, "late");
}

#[test]
fn a_failing_migration_leaves_every_value_as_it_was() {
    let _turn = serial();
    for bad in ["refuse-up", "panic-up"] {
        let handles = sessions(&["ada", bad, "grace"]);
        handles[0].write().unwrap().hits = 99;
        let history = Table::global().history().len();
        let error = Table::global()
            .commit(Update::new("session v2").migrate::<patched::Session>())
            .unwrap_err();
        assert!(matches!(error, Error::Migration { .. }), "{error}");
        assert_eq!(error.step(), "migrate");
        let message = error.to_string();
        assert!(
            message.contains("`tests::Session` from version 1 to 2"),
            "{message}"
        );
        if bad == "refuse-up" {
            assert!(
                message.contains("this user cannot be migrated"),
                "{message}"
            );
        } else {
            assert!(
                message.contains("the migration panicked: migration bug"),
                "{message}"
            );
        }
        assert!(message.contains("every value kept version 1"), "{message}");
        for handle in &handles {
            assert_eq!(handle.version(), 1);
        }
        assert_eq!(handles[0].read().unwrap().hits, 99);
        assert_eq!(handles[1].read().unwrap().user, bad);
        // Nothing was committed.
        assert_eq!(Table::global().history().len(), history);
    }
}

#[test]
fn a_failing_down_migration_refuses_the_rollback() {
    let _turn = serial();
    let handles = sessions(&["ada"]);
    Table::global()
        .commit(Update::new("session v2").migrate::<patched::Session>())
        .unwrap();
    as_v2(&handles[0]).write().unwrap().hits = u64::MAX;
    let error = Table::global().rollback().unwrap_err();
    assert!(
        error.to_string().contains("hits do not fit version 1"),
        "{error}"
    );
    assert_eq!(handles[0].version(), 2);
    assert_eq!(as_v2(&handles[0]).read().unwrap().hits, u64::MAX);
    as_v2(&handles[0]).write().unwrap().hits = 3;
    Table::global().rollback().unwrap();
    assert_eq!(handles[0].read().unwrap().hits, 3);
}

#[test]
fn older_versions_chain_through_snapshots() {
    let _turn = serial();
    let handles = sessions(&["ada"]);
    Table::global()
        .commit(Update::new("session v3").migrate::<patched_twice::Session>())
        .unwrap();
    assert_eq!(
        *as_v3(&handles[0]).read().unwrap(),
        patched_twice::Session {
            user: "ada".into(),
            hits: 7,
            display_name: "ada!".into(),
            tier: "Free".into(),
            visits: Vec::new(),
        }
    );
    as_v3(&handles[0]).write().unwrap().visits.push(1);
    Table::global().rollback().unwrap();
    assert_eq!(handles[0].read().unwrap().nick, "ada!");
}

/// A state enum gaining a variant.
mod phase_v1 {
    use super::*;
    #[hot_state(version = 1, name = "tests::Phase")]
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub enum Phase {
        Idle,
        Busy { since: u64 },
    }
}

mod phase_v2 {
    use super::*;
    #[hot_state(version = 1, snapshot)]
    #[derive(Serialize, Deserialize)]
    pub enum PhaseV1 {
        Idle,
        Busy { since: u64 },
    }

    #[hot_state(version = 2, name = "tests::Phase", previous = PhaseV1)]
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub enum Phase {
        Idle,
        Busy { since: u64 },
        Draining { left: u32 },
    }

    impl Migrate<PhaseV1> for Phase {
        fn up(old: PhaseV1) -> Result<Self, MigrationError> {
            Ok(match old {
                PhaseV1::Idle => Phase::Idle,
                PhaseV1::Busy { since } => Phase::Busy { since },
            })
        }
        fn down(&self) -> Result<PhaseV1, MigrationError> {
            Ok(match self {
                Phase::Idle => PhaseV1::Idle,
                Phase::Busy { since } => PhaseV1::Busy { since: *since },
                // Version 1 has no draining: the connection counts as busy.
                Phase::Draining { .. } => PhaseV1::Busy { since: 0 },
            })
        }
    }
}

static PHASE: Singleton<phase_v1::Phase> = Singleton::new("main", || phase_v1::Phase::Idle);

#[test]
fn an_enum_gains_a_variant_and_a_singleton_is_migrated_with_it() {
    let _turn = serial();
    *PHASE.write().unwrap() = phase_v1::Phase::Busy { since: 5 };
    // Another copy of the static (as a patch might have) reaches the same value.
    static SAME: Singleton<phase_v1::Phase> = Singleton::new("main", || phase_v1::Phase::Idle);
    assert_eq!(*SAME.read().unwrap(), phase_v1::Phase::Busy { since: 5 });

    static PHASE_V2: Singleton<phase_v2::Phase> = Singleton::new("main", || phase_v2::Phase::Idle);
    Table::global()
        .commit(Update::new("phase v2").migrate::<phase_v2::Phase>())
        .unwrap();
    assert_eq!(
        *PHASE_V2.read().unwrap(),
        phase_v2::Phase::Busy { since: 5 }
    );
    *PHASE_V2.write().unwrap() = phase_v2::Phase::Draining { left: 3 };
    assert!(PHASE.read().is_err());
    Table::global().rollback().unwrap();
    assert_eq!(*PHASE.read().unwrap(), phase_v1::Phase::Busy { since: 0 });
}

#[test]
fn a_value_held_past_the_deadline_refuses_the_commit() {
    let _turn = serial();
    let handles = sessions(&["held"]);
    let table = Table::global();
    let guard = handles[0].write().unwrap();
    let error = table
        .commit_with_timeout(
            Update::new("session v2").migrate::<patched::Session>(),
            std::time::Duration::from_millis(50),
        )
        .unwrap_err();
    assert!(matches!(error, Error::StateBusy { .. }), "{error}");
    drop(guard);
    assert_eq!(handles[0].version(), 1);
}

#[test]
fn a_thread_holding_the_lock_then_calling_new_code_sees_code_and_value_switch_together() {
    let _turn = serial();
    let handles = sessions(&["lock"]);
    let mut locked = handles[0].lock();
    let committer = std::thread::spawn(|| {
        Table::global()
            .commit(Update::new("session v2").migrate::<patched::Session>())
            .unwrap()
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    // The commit waits for the lock: the value is still version 1 under it.
    assert_eq!(locked.get_mut().unwrap().hits, 7);
    drop(locked);
    committer.join().unwrap();
    assert_eq!(handles[0].version(), 2);
    Table::global().rollback().unwrap();
}

#[test]
fn many_values_migrate_in_parallel_and_one_failure_among_them_changes_nothing() {
    let _turn = serial();
    /// Two converting threads for this test only (the others wait for their turn meanwhile).
    struct Threads;
    impl Drop for Threads {
        fn drop(&mut self) {
            std::env::remove_var("HOTRELOAD_MIGRATION_THREADS");
        }
    }
    std::env::set_var("HOTRELOAD_MIGRATION_THREADS", "2");
    let _threads = Threads;
    const MANY: usize = 40_000;
    let mut handles: Vec<Handle<host::Session>> = (0..MANY)
        .map(|i| Handle::new(v1(&format!("user{i}"), i as u32)))
        .collect();
    handles[30_000] = Handle::new(v1("refuse-up", 0));
    let error = Table::global()
        .commit(Update::new("session v2").migrate::<patched::Session>())
        .unwrap_err();
    let Error::Migration { values, reason, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!(*values, MANY);
    assert!(reason.contains("this user cannot be migrated"), "{reason}");
    assert!(handles.iter().all(|h| h.version() == 1));
    assert_eq!(handles[39_999].read().unwrap().hits, 39_999);

    handles[30_000] = Handle::new(v1("fine", 0));
    Table::global()
        .commit(Update::new("session v2").migrate::<patched::Session>())
        .unwrap();
    for (i, handle) in handles.iter().enumerate() {
        let session = as_v2(handle).read().unwrap();
        if i != 30_000 {
            assert_eq!(
                (session.hits, session.display_name.as_str()),
                (i as u64, &*format!("user{i}!"))
            );
        }
    }
    Table::global().rollback().unwrap();
    assert!(handles.iter().all(|h| h.version() == 1));
    assert_eq!(handles[12_345].read().unwrap().nick, "user12345!");
}

mod empty_v1 {
    use super::*;
    #[hot_state(version = 1, name = "tests::NeverStored")]
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub struct Counter {
        pub n: u32,
    }
}

mod empty_v2 {
    use super::*;
    #[hot_state(version = 1, snapshot)]
    #[derive(Serialize, Deserialize)]
    pub struct CounterV1 {
        pub n: u32,
    }

    #[hot_state(version = 2, name = "tests::NeverStored", previous = CounterV1)]
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub struct Counter {
        pub n: u64,
    }

    impl Migrate<CounterV1> for Counter {
        fn up(old: CounterV1) -> Result<Self, MigrationError> {
            Ok(Counter { n: old.n.into() })
        }
        fn down(&self) -> Result<CounterV1, MigrationError> {
            Ok(CounterV1 {
                n: u32::try_from(self.n).map_err(MigrationError::new)?,
            })
        }
    }
}

#[test]
fn a_type_without_values_goes_back_to_its_running_version_on_rollback() {
    let _turn = serial();
    // No value of it was ever stored when the patch came, nor while it was applied.
    Table::global()
        .commit(Update::new("never stored v2").migrate::<empty_v2::Counter>())
        .unwrap();
    Table::global().rollback().unwrap();
    // The running code (version 1) stores and reads its values as they are.
    let counter = Handle::new(empty_v1::Counter { n: 7 });
    assert_eq!(counter.version(), 1);
    assert_eq!(counter.read().unwrap().n, 7);

    // Naming a type twice in one update migrates it once, to the version named last.
    let report = Table::global()
        .commit(
            Update::new("twice")
                .migrate::<empty_v1::Counter>()
                .migrate::<empty_v2::Counter>(),
        )
        .unwrap();
    assert_eq!(report.states.len(), 1);
    assert_eq!(counter.version(), 2);
    Table::global().rollback().unwrap();
    assert_eq!(counter.read().unwrap().n, 7);
}
