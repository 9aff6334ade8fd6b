//! Reading the fixture app's output: one [`Tick`] per line, and the line checker that holds each
//! line to the one before.
//!
//! The host's tick counter and the shared `STEPS` static advance by exactly one, `SPAWNED` never
//! goes down, and `count`/`here` (a private static and a private thread-local) advance by one of
//! the steps the test allows; the caught panic is the same version's. `step` is traced: every
//! tick's events inside its span reach the app's subscriber (`traced` grows); `lazy` counts the
//! initialisations of lazily initialised statics, which the tests check where they patch them.
//! `settle` is traced too (`settled`: its span's events), with `#[hot]` written above
//! `#[tracing::instrument]`. [`crate::differential`] compares these lines with a fresh build's.

/// One line of the app's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    pub tick: u64,
    pub version: String,
    pub steps: u64,
    pub spawned: u64,
    pub count: u64,
    pub here: u64,
    /// Events the subscriber saw inside a `step` span.
    pub traced: Option<u64>,
    /// Callsites registered with the subscriber.
    pub callsites: Option<u64>,
    /// How many times `logic`'s lazily initialised statics were initialised.
    pub lazy: Option<u64>,
    pub caught: String,
    /// What `Report::edition`, a hot method of a block that also has an ordinary one, printed.
    pub edition: Option<String>,
    /// What `logic::describe` (generic, so the app's own copy) printed.
    pub described: Option<String>,
    /// What `logic::settle` (traced, `#[hot]` written above `#[tracing::instrument]`) returned.
    pub settle: Option<u64>,
    /// Events the subscriber saw inside a `settle` span.
    pub settled: Option<u64>,
}

impl Tick {
    pub fn parse(line: &str) -> Option<Tick> {
        let (fields, caught) = line.split_once(" caught=[")?;
        let caught = caught.strip_suffix(']')?.to_owned();
        let mut tick = None;
        let mut version = None;
        let mut steps = None;
        let mut spawned = None;
        let mut count = None;
        let mut here = None;
        let (mut edition, mut described) = (None, None);
        let (mut traced, mut callsites, mut lazy) = (None, None, None);
        let (mut settle, mut settled) = (None, None);
        for field in fields.split_whitespace() {
            let (key, value) = field.split_once('=')?;
            match key {
                "tick" => tick = value.parse().ok(),
                "version" => version = Some(value.to_owned()),
                "steps" => steps = value.parse().ok(),
                "spawned" => spawned = value.parse().ok(),
                "count" => count = value.parse().ok(),
                "here" => here = value.parse().ok(),
                "edition" => edition = Some(value.to_owned()),
                "described" => described = Some(value.to_owned()),
                "settle" => settle = Some(value.parse().ok()?),
                "settled" => settled = Some(value.parse().ok()?),
                "traced" => traced = Some(value.parse().ok()?),
                "callsites" => callsites = Some(value.parse().ok()?),
                "lazy" => lazy = Some(value.parse().ok()?),
                // Fields this test does not check.
                _ => {}
            }
        }
        Some(Tick {
            tick: tick?,
            version: version?,
            steps: steps?,
            spawned: spawned?,
            count: count?,
            here: here?,
            traced,
            callsites,
            lazy,
            caught,
            edition,
            described,
            settle,
            settled,
        })
    }
}

/// Checks `tick`, read as `line`, on its own: the panic of `fail` was caught as its version's.
pub fn check_caught(tick: &Tick, line: &str) {
    assert_eq!(
        tick.caught,
        format!("failure from {}", tick.version),
        "the panic of `fail` was not caught as the same version's: {line}"
    );
}

/// Checks that `tick`, read as `line`, continues `last`: `count` may advance by one of
/// `count_steps`, `here` by one of `here_steps`.
pub fn check_continues(
    last: &Tick,
    tick: &Tick,
    line: &str,
    count_steps: &[u64],
    here_steps: &[u64],
) {
    assert_eq!(
        tick.tick,
        last.tick + 1,
        "the host's tick counter jumped (did the app restart?): {last:?} then {line}"
    );
    assert_eq!(
        tick.steps,
        last.steps + 1,
        "logic::STEPS did not continue (a patch forked or reset it): {last:?} then {line}"
    );
    assert!(
        tick.spawned >= last.spawned,
        "logic::SPAWNED went down: {last:?} then {line}"
    );
    assert!(
        count_steps.contains(&(tick.count - last.count.min(tick.count))),
        "counter's private static did not continue by {count_steps:?}: {last:?} then {line}",
    );
    assert!(
        here_steps.contains(&(tick.here - last.here.min(tick.here))),
        "perthread's private thread-local did not continue by {here_steps:?}: {last:?} then {line}",
    );
    if let (Some(before), Some(now)) = (last.traced, tick.traced) {
        assert!(
            now > before,
            "the events of `step`'s span stopped reaching the subscriber: {last:?} then {line}"
        );
    }
    if let (Some(before), Some(now)) = (last.settled, tick.settled) {
        assert!(
            now >= before,
            "the count of events in `settle`'s span went down: {last:?} then {line}"
        );
    }
}
