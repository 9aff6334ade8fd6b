//! The differential check: a patched process behaves as a fresh build of the same sources would.
//!
//! After a patch, [`RunningApp::matches_a_fresh_build`] builds the fixture's current sources with
//! cargo (in the fixture's own target directory and the way the tool builds the host, so only the
//! edited crates and the app recompile), reads a line of the patched process, runs the fresh
//! build from that line's state for a few ticks (the fixture's one-shot mode, `FIXTURE_FROM` and
//! `FIXTURE_TICKS`) and compares them with the patched process's next lines: the same versions,
//! counts and caught panic, and the same number of events inside each traced function's span per
//! tick. What only a long-running process has (callsites registered, lazy values initialised,
//! tasks spawned on other threads) is left out.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::bench::CargoBuildOutput as _;
use crate::ticks::Tick;
use crate::{Fixture, RunningApp, MORE_TICKS};

/// How many ticks of the patched process are compared with the fresh build's.
const COMPARED_TICKS: usize = 3;

/// What one tick shows that the code and the state determine.
#[derive(Debug, PartialEq, Eq)]
pub struct Behaviour {
    pub tick: u64,
    pub version: String,
    pub edition: Option<String>,
    pub steps: u64,
    pub count: u64,
    pub here: u64,
    pub described: Option<String>,
    pub settle: Option<u64>,
    pub caught: String,
    /// Events inside `step`'s span during this tick.
    pub step_events: Option<u64>,
    /// Events inside `settle`'s span during this tick.
    pub settle_events: Option<u64>,
}

impl Behaviour {
    /// What `tick` shows, given the line before it.
    pub fn of(before: &Tick, tick: &Tick) -> Self {
        let delta = |then: Option<u64>, now: Option<u64>| Some(now? - then.unwrap_or(0));
        Behaviour {
            tick: tick.tick,
            version: tick.version.clone(),
            edition: tick.edition.clone(),
            steps: tick.steps,
            count: tick.count,
            here: tick.here,
            described: tick.described.clone(),
            settle: tick.settle,
            caught: tick.caught.clone(),
            step_events: delta(before.traced, tick.traced),
            settle_events: delta(before.settled, tick.settled),
        }
    }
}

/// The behaviour of each tick of `ticks`, the first following `start`.
pub fn behaviours(start: &Tick, ticks: &[Tick]) -> Vec<Behaviour> {
    std::iter::once(start)
        .chain(ticks)
        .zip(ticks)
        .map(|(before, tick)| Behaviour::of(before, tick))
        .collect()
}

impl Fixture {
    /// Builds the fixture's current sources with cargo, as the tool builds the host, in the
    /// fixture's target directory; returns the executable.
    pub fn fresh_build(&self) -> PathBuf {
        self.cargo_build().executable()
    }

    /// Runs the fresh build `executable` from `from`'s state for `ticks` ticks; its lines.
    pub fn fresh_ticks(&self, executable: &PathBuf, from: &Tick, ticks: usize) -> Vec<Tick> {
        let state = format!(
            "tick={} steps={} count={} here={}",
            from.tick, from.steps, from.count, from.here
        );
        let output = Command::new(executable)
            .env("FIXTURE_FROM", &state)
            .env("FIXTURE_TICKS", ticks.to_string())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running the fresh build {}: {e}", executable.display()));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "the fresh build from {state} failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<Tick> = stdout
            .lines()
            .map(|line| {
                Tick::parse(line)
                    .unwrap_or_else(|| panic!("the fresh build printed an unexpected line: {line}"))
            })
            .collect();
        assert_eq!(lines.len(), ticks, "the fresh build's lines:\n{stdout}");
        lines
    }
}

impl RunningApp {
    /// The differential check after a patch (see [`crate::differential`]): the app's next ticks
    /// show what a fresh build of the fixture's current sources shows from the same state.
    pub fn matches_a_fresh_build(&mut self, fixture: &Fixture, context: &str) {
        if let Some(difference) = self.differences_from_a_fresh_build(fixture) {
            panic!("{context}: {difference}");
        }
    }

    /// What the app's next ticks show that a fresh build of the fixture's current sources, run
    /// from the same state, does not (or the other way round); `None` when they agree.
    pub fn differences_from_a_fresh_build(&mut self, fixture: &Fixture) -> Option<String> {
        let executable = fixture.fresh_build();
        self.drain();
        let deadline = Instant::now() + MORE_TICKS;
        let from = self.next_tick(deadline, "a line to start the fresh build from");
        let patched: Vec<Tick> = (0..COMPARED_TICKS)
            .map(|_| self.next_tick(deadline, "the lines to compare with the fresh build's"))
            .collect();
        let fresh = fixture.fresh_ticks(&executable, &from, COMPARED_TICKS);
        let zero = Tick {
            traced: Some(0),
            settled: Some(0),
            ..from.clone()
        };
        let (running, built) = (behaviours(&from, &patched), behaviours(&zero, &fresh));
        (running != built).then(|| {
            format!(
                "the running process does not do what a fresh build of the same sources does from the same state {from:?}:\n  running: {running:?}\n  fresh:   {built:?}"
            )
        })
    }
}
