//! Property: a migration up then down gives back every value exactly. Arbitrary values of version
//! 1 (unicode strings, integers at their bounds, an enum, an `Option`, a `Vec`) are stored in
//! handles, migrated to version 2 by a commit (whose `up` and `down` are lossless for what
//! version 1 can hold), read as version 2, and migrated back by a rollback.

use std::sync::{Mutex, MutexGuard};

use hotreload_runtime::state::Handle;
use hotreload_runtime::{Table, Update};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Tests of this file share the process's one table (rollback undoes the last update): they take
/// turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Version 1, as the host has it.
mod host {
    use hotreload_runtime::hot_state;
    use serde::{Deserialize, Serialize};

    #[hot_state(version = 1, name = "roundtrip::Record")]
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Record {
        pub name: String,
        pub count: u64,
        pub delta: i64,
        pub small: i8,
        pub ratio: u32,
        pub level: Level,
        pub note: Option<String>,
        pub tags: Vec<u32>,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub enum Level {
        Off,
        Low(u8),
        High { limit: i32, label: String },
    }
}

/// Version 2, as a patch brings it: `name` renamed to `title`, `small` widened to `i16`, `tags`
/// to `Vec<u64>`, `note` an `Option<Box<str>>`, `level` gains a variant and `revision` is added.
mod patched {
    use hotreload_runtime::hot_state;
    use hotreload_runtime::state::{Migrate, MigrationError};
    use serde::{Deserialize, Serialize};

    #[hot_state(version = 1, snapshot)]
    #[derive(Serialize, Deserialize)]
    pub struct RecordV1 {
        pub name: String,
        pub count: u64,
        pub delta: i64,
        pub small: i8,
        pub ratio: u32,
        pub level: LevelV1,
        pub note: Option<String>,
        pub tags: Vec<u32>,
    }

    #[derive(Serialize, Deserialize)]
    pub enum LevelV1 {
        Off,
        Low(u8),
        High { limit: i32, label: String },
    }

    #[hot_state(version = 2, name = "roundtrip::Record", previous = RecordV1)]
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub struct Record {
        pub title: String,
        pub count: u64,
        pub delta: i64,
        pub small: i16,
        pub ratio: u32,
        pub level: Level,
        pub note: Option<Box<str>>,
        pub tags: Vec<u64>,
        pub revision: u32,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub enum Level {
        Off,
        Low(u8),
        High { limit: i32, label: String },
        Custom(Vec<u8>),
    }

    impl Migrate<RecordV1> for Record {
        fn up(old: RecordV1) -> Result<Self, MigrationError> {
            Ok(Record {
                title: old.name,
                count: old.count,
                delta: old.delta,
                small: old.small.into(),
                ratio: old.ratio,
                level: match old.level {
                    LevelV1::Off => Level::Off,
                    LevelV1::Low(n) => Level::Low(n),
                    LevelV1::High { limit, label } => Level::High { limit, label },
                },
                note: old.note.map(String::into_boxed_str),
                tags: old.tags.into_iter().map(u64::from).collect(),
                revision: 0,
            })
        }

        fn down(&self) -> Result<RecordV1, MigrationError> {
            Ok(RecordV1 {
                name: self.title.clone(),
                count: self.count,
                delta: self.delta,
                small: i8::try_from(self.small).map_err(MigrationError::new)?,
                ratio: self.ratio,
                level: match &self.level {
                    Level::Off => LevelV1::Off,
                    Level::Low(n) => LevelV1::Low(*n),
                    Level::High { limit, label } => LevelV1::High {
                        limit: *limit,
                        label: label.clone(),
                    },
                    Level::Custom(_) => {
                        return Err(MigrationError::new("version 1 has no custom level"))
                    }
                },
                note: self.note.as_deref().map(str::to_owned),
                tags: self
                    .tags
                    .iter()
                    .map(|&tag| u32::try_from(tag).map_err(MigrationError::new))
                    .collect::<Result<_, _>>()?,
            })
        }
    }
}

/// What version 2 must hold for `old`, written independently of `Migrate::up`.
fn expected_v2(old: &host::Record) -> patched::Record {
    patched::Record {
        title: old.name.clone(),
        count: old.count,
        delta: old.delta,
        small: i16::from(old.small),
        ratio: old.ratio,
        level: match &old.level {
            host::Level::Off => patched::Level::Off,
            host::Level::Low(n) => patched::Level::Low(*n),
            host::Level::High { limit, label } => patched::Level::High {
                limit: *limit,
                label: label.clone(),
            },
        },
        note: old.note.as_deref().map(Box::from),
        tags: old.tags.iter().map(|&tag| u64::from(tag)).collect(),
        revision: 0,
    }
}

fn as_v2(handle: &Handle<host::Record>) -> &Handle<patched::Record> {
    // SAFETY: a handle's layout does not depend on its type parameter; this is what a patch's
    // code does when the host hands it `&Handle<Record>` compiled against another version.
    unsafe { &*(handle as *const Handle<host::Record>).cast() }
}

/// Strings of any scalar values, unicode and control characters included, plus a few chosen ones.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        1 => Just(String::new()),
        1 => Just("\u{0}\"\\\n\u{7f}\u{feff}\u{10ffff}".to_owned()),
        1 => Just("héllo wörld 日本語 🦀 עברית".to_owned()),
    ]
}

fn u64_bounds() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        any::<u64>()
    ]
}

fn i64_bounds() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(-1),
        Just(0),
        any::<i64>()
    ]
}

fn i8_bounds() -> impl Strategy<Value = i8> {
    prop_oneof![Just(i8::MIN), Just(i8::MAX), any::<i8>()]
}

fn u32_bounds() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), Just(u32::MAX), any::<u32>()]
}

fn level() -> impl Strategy<Value = host::Level> {
    prop_oneof![
        Just(host::Level::Off),
        any::<u8>().prop_map(host::Level::Low),
        (
            prop_oneof![Just(i32::MIN), Just(i32::MAX), any::<i32>()],
            text()
        )
            .prop_map(|(limit, label)| host::Level::High { limit, label }),
    ]
}

fn record() -> impl Strategy<Value = host::Record> {
    (
        text(),
        u64_bounds(),
        i64_bounds(),
        i8_bounds(),
        u32_bounds(),
        level(),
        proptest::option::of(text()),
        vec(u32_bounds(), 0..8),
    )
        .prop_map(
            |(name, count, delta, small, ratio, level, note, tags)| host::Record {
                name,
                count,
                delta,
                small,
                ratio,
                level,
                note,
                tags,
            },
        )
}

fn commit() -> Result<(), TestCaseError> {
    let report = Table::global()
        .commit(Update::new("roundtrip v2").migrate::<patched::Record>())
        .map_err(|error| TestCaseError::fail(format!("commit: {error}")))?;
    prop_assert_eq!(report.states.len(), 1);
    prop_assert_eq!((report.states[0].from, report.states[0].to), (1, 2));
    Ok(())
}

fn rollback() -> Result<(), TestCaseError> {
    let report = Table::global()
        .rollback()
        .map_err(|error| TestCaseError::fail(format!("rollback: {error}")))?;
    prop_assert_eq!((report.states[0].from, report.states[0].to), (2, 1));
    Ok(())
}

/// Commits version 2, runs `at_v2`, and rolls back whatever `at_v2` returned, so a failed case
/// leaves the table as it found it for the next one.
fn at_version_2(at_v2: impl FnOnce() -> Result<(), TestCaseError>) -> Result<(), TestCaseError> {
    commit()?;
    let checked = at_v2();
    rollback()?;
    checked
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        // Nothing written next to the sources: a failure prints its minimal input.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn up_then_down_gives_back_every_value(originals in vec(record(), 1..24)) {
        let _turn = serial();
        let handles: Vec<Handle<host::Record>> =
            originals.iter().cloned().map(Handle::new).collect();

        at_version_2(|| {
            for (handle, original) in handles.iter().zip(&originals) {
                prop_assert_eq!(handle.version(), 2);
                // The host's code is refused, never misreads a value.
                prop_assert!(handle.read().is_err());
                prop_assert_eq!(&*as_v2(handle).read().unwrap(), &expected_v2(original));
            }
            Ok(())
        })?;

        for (handle, original) in handles.iter().zip(&originals) {
            prop_assert_eq!(handle.version(), 1);
            prop_assert!(as_v2(handle).read().is_err());
            prop_assert_eq!(&*handle.read().unwrap(), original);
        }
    }

    #[test]
    fn edits_at_version_2_that_version_1_can_hold_come_back_down(
        originals in vec(record(), 1..12),
        edits in vec(record(), 12),
    ) {
        let _turn = serial();
        let handles: Vec<Handle<host::Record>> =
            originals.iter().cloned().map(Handle::new).collect();

        at_version_2(|| {
            for (handle, edit) in handles.iter().zip(&edits) {
                let mut value = as_v2(handle).write().unwrap();
                *value = expected_v2(edit);
                // A field version 1 does not have is dropped on the way down.
                value.revision = u32::MAX;
            }
            Ok(())
        })?;

        for (handle, edit) in handles.iter().zip(&edits) {
            prop_assert_eq!(&*handle.read().unwrap(), edit);
        }
    }
}

#[test]
fn values_version_1_cannot_hold_refuse_the_rollback_and_stay_at_version_2() {
    let _turn = serial();
    let original = host::Record {
        name: "ünïcödé".into(),
        count: u64::MAX,
        delta: i64::MIN,
        small: i8::MIN,
        ratio: u32::MAX,
        level: host::Level::Off,
        note: None,
        tags: vec![u32::MAX],
    };
    let handle = Handle::new(original.clone());
    Table::global()
        .commit(Update::new("roundtrip v2").migrate::<patched::Record>())
        .unwrap();
    let mut v2 = expected_v2(&original);
    v2.tags.push(u64::from(u32::MAX) + 1);
    *as_v2(&handle).write().unwrap() = v2.clone();
    let error = Table::global().rollback().unwrap_err();
    assert!(error.to_string().contains("roundtrip::Record"), "{error}");
    assert_eq!(handle.version(), 2);
    assert_eq!(*as_v2(&handle).read().unwrap(), v2);

    as_v2(&handle).write().unwrap().tags.pop();
    Table::global().rollback().unwrap();
    assert_eq!(*handle.read().unwrap(), original);
}
