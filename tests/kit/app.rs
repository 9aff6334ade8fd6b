//! A running fixture app: `cargo hotpatch run` or `watch` of `tests/fixtures/patchable`, every
//! line it prints checked against the one before (see [`crate::ticks`]), and what the tests wait
//! for and expect of it.

use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use crate::ticks::{check_caught, check_continues, Tick};
use crate::{children_of, hello, parent_of, read_lines, waits_for_arguments, Fixture, ToolRun};
use crate::{MORE_TICKS, NEW_VERSION};

/// `cargo hotpatch run -p app` with its app; both are killed when this is dropped.
pub struct RunningApp {
    run: ToolRun,
    lines: Receiver<String>,
    /// The last line read.
    pub last: Option<Tick>,
    /// What `counter::count` may add per tick (its private static), and `perthread::count_here`
    /// (its private thread-local): 1 until a test patches them.
    pub count_steps: Vec<u64>,
    pub here_steps: Vec<u64>,
    /// Set by [`RunningApp::expect_restart`]: the next first tick starts a new sequence.
    restart_expected: bool,
}

impl RunningApp {
    /// Starts `run` and waits for the first tick.
    pub fn start(fixture: &Fixture) -> Self {
        Self::start_with(fixture, "run")
    }

    /// Starts `cargo hotpatch COMMAND` (`run` or `watch`) and waits for the first tick.
    pub fn start_with(fixture: &Fixture, command: &str) -> Self {
        Self::start_with_args(fixture, command, &[])
    }

    /// [`RunningApp::start_with`], with more arguments for the command.
    pub fn start_with_args(fixture: &Fixture, command: &str, extra: &[&str]) -> Self {
        let (run, stdout) = ToolRun::start(fixture, command, extra);
        let mut app = RunningApp {
            run,
            lines: read_lines(stdout),
            last: None,
            count_steps: vec![1],
            here_steps: vec![1],
            restart_expected: false,
        };
        let first = app.next_tick(
            Instant::now() + fixture.profile().first_build(),
            "the app's first tick",
        );
        app.run.adopt_app();
        assert_eq!(first.version, "v1", "the app starts at v1: {first:?}");
        app
    }

    pub fn stderr_tail(&self) -> String {
        self.run.stderr_tail()
    }

    /// Sends SIGINT to the tool alone (a Ctrl-C that does not reach the app), and waits up to
    /// `within` for it to exit: its exit code, and whether the app it ran was gone by then.
    pub fn interrupt_tool(&mut self, within: Duration) -> (Option<i32>, bool) {
        let app = self.run.pid;
        // SAFETY: signalling a process this test started has no memory effects.
        unsafe { libc::kill(self.run.tool.id() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + within;
        let code = loop {
            if let Ok(Some(status)) = self.run.tool.try_wait() {
                break status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the tool did not exit within {within:?} of SIGINT\n{}",
                self.run.stderr_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let app_gone = app.is_none_or(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
                stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z'))
            })
        });
        (code, app_gone)
    }

    /// The next line, checked against the one before.
    pub fn next_tick(&mut self, deadline: Instant, waiting_for: &str) -> Tick {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let line = match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!(
                "timed out waiting for {waiting_for}; last line {:?}\n--- run's stderr (tail)\n{}",
                self.last,
                self.stderr_tail()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.run.tool.wait();
                panic!(
                    "the app's output ended while waiting for {waiting_for}: the app died ({status:?}); last line {:?}\n--- run's stderr (tail)\n{}",
                    self.last,
                    self.stderr_tail()
                )
            }
        };
        self.check(&line)
    }

    /// Every line already received, checked.
    pub fn drain(&mut self) {
        loop {
            match self.lines.try_recv() {
                Ok(line) => {
                    self.check(&line);
                }
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => panic!(
                    "the app's output ended: the app died; last line {:?}\n--- run's stderr (tail)\n{}",
                    self.last,
                    self.stderr_tail()
                ),
            }
        }
    }

    fn check(&mut self, line: &str) -> Tick {
        let tick = Tick::parse(line)
            .unwrap_or_else(|| panic!("the app printed an unexpected line: {line:?}"));
        if self.restart_expected && tick.tick == 0 {
            // A new process: its counts start again.
            self.restart_expected = false;
            self.last = None;
            self.run.pid = None;
        }
        check_caught(&tick, line);
        if let Some(last) = &self.last {
            check_continues(last, &tick, line, &self.count_steps, &self.here_steps);
        }
        self.last = Some(tick.clone());
        tick
    }

    /// Reads lines until one and the line before it satisfy `condition`.
    pub fn wait_until(&mut self, what: &str, condition: impl Fn(&Tick, &Tick) -> bool) -> Tick {
        let deadline = Instant::now() + NEW_VERSION;
        loop {
            let before = self.last.clone();
            let tick = self.next_tick(deadline, what);
            if before.is_some_and(|before| condition(&before, &tick)) {
                return tick;
            }
        }
    }

    /// Waits until `watch` has compiled its baseline (the base's functions, which the first
    /// patch's list of changed functions is compared with): it then starts compilers for the
    /// next save, which wait on their argument pipes.
    pub fn wait_until_watch_is_ready(&self) {
        let deadline = Instant::now() + NEW_VERSION;
        while !children_of(self.run.tool.id())
            .into_iter()
            .any(waits_for_arguments)
        {
            assert!(
                Instant::now() < deadline,
                "watch started no compiler for the next save\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The next ticks may come from a restarted app (watch rebuilt it): a tick 0 starts anew.
    pub fn expect_restart(&mut self) {
        self.restart_expected = true;
    }

    /// The app's pid, as it said on the control socket.
    pub fn pid(&mut self) -> Option<u32> {
        if self.run.pid.is_none() {
            self.assert_alive("asking the app's pid");
        }
        self.run.pid
    }

    /// Whether the app restarted since [`RunningApp::expect_restart`].
    pub fn restarted(&self) -> bool {
        !self.restart_expected
    }

    /// Everything the tool printed on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.run.stderr_text()
    }
    /// Waits for `version` after a patch of `logic` and checks the host's world is the patch's:
    /// `STEPS` continued from `steps_before`, the patched panic is caught, and a task the patched
    /// code spawned ran on the host's tokio runtime.
    pub fn expect_patched(&mut self, version: &str, steps_before: u64) -> Tick {
        let patched = self.wait_for_version(version);
        assert!(
            patched.steps > steps_before,
            "STEPS kept counting across the patch (shared static, not reset): {steps_before} then {patched:?}"
        );
        assert_eq!(
            patched.caught,
            format!("failure from {version}"),
            "the patched panic is caught by the host"
        );
        // Tasks spawned before the patched step number at most its steps - 1: reaching them
        // means a task spawned by the patched code ran on the host's tokio runtime.
        let deadline = Instant::now() + MORE_TICKS;
        loop {
            let tick = self.next_tick(deadline, "a task spawned by patched code to run");
            assert_eq!(tick.version, version, "still at {version}: {tick:?}");
            if tick.spawned >= patched.steps {
                break;
            }
        }
        self.expect_serving(version, "after applying the patch");
        patched
    }

    /// Reads lines until one shows `version`.
    pub fn wait_for_version(&mut self, version: &str) -> Tick {
        let deadline = Instant::now() + NEW_VERSION;
        loop {
            let tick = self.next_tick(deadline, &format!("version={version}"));
            if tick.version == version {
                return tick;
            }
        }
    }

    /// Reads a few lines printed from now on; each must show `version`.
    pub fn expect_serving(&mut self, version: &str, context: &str) -> Tick {
        self.drain();
        let deadline = Instant::now() + MORE_TICKS;
        let mut tick = None;
        for _ in 0..3 {
            let next = self.next_tick(deadline, &format!("more ticks at {version} ({context})"));
            assert_eq!(
                next.version, version,
                "{context}: the app should still serve {version}: {next:?}"
            );
            tick = Some(next);
        }
        self.assert_alive(context);
        tick.unwrap()
    }

    /// The same app process still answers.
    pub fn assert_alive(&mut self, context: &str) {
        assert!(
            matches!(self.run.tool.try_wait(), Ok(None)),
            "{context}: `cargo hotpatch run` exited\n--- run's stderr (tail)\n{}",
            self.stderr_tail()
        );
        match hello(&self.run.socket) {
            Ok(pid) => {
                if self.run.pid.is_none() {
                    // Restarted by `watch`: the new app must be the tool's child.
                    assert_eq!(
                        parent_of(pid),
                        Some(self.run.tool.id()),
                        "{context}: the restarted app (pid {pid}) is not the tool's child"
                    );
                    self.run.pid = Some(pid);
                }
                assert_eq!(
                    Some(pid),
                    self.run.pid,
                    "{context}: another process answers on the control socket"
                )
            }
            Err(error) => panic!("{context}: `hello` failed: {error}"),
        }
    }
}
