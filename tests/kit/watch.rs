//! What the benchmarks of `cargo hotpatch watch` share: watch with its app, the split it prints
//! for each patch (`Patched CRATES in X (debounce D, rustc R, checks C, link L, apply A)`), and
//! waiting until it is quiet before the next edit.

use std::time::{Duration, Instant, SystemTime};

use crate::bench::{median, ToolProcess};
use crate::{children_of, waits_for_arguments, Fixture};

/// How long watch may take to patch an edit, and to settle.
pub const WATCH_PATCHES: Duration = Duration::from_secs(60);
/// How long watch must have no child but the app before the next edit.
pub const QUIET: Duration = Duration::from_millis(500);

/// One save patched by watch; times in milliseconds.
pub struct Patched {
    /// Writing the file to the app showing the new behaviour (filled in by the benchmark).
    pub save_to_new: f64,
    /// What watch prints: its first event to the applied patch, and the split.
    pub watch_total: f64,
    pub debounce: f64,
    pub rustc: f64,
    pub checks: f64,
    pub link: f64,
    pub apply: f64,
}

/// The table rows of watch's own split of `patched`, indented under the save -> new row.
pub fn split_rows(patched: &[Patched]) -> Vec<(&'static str, Vec<f64>, &'static str)> {
    let column = |f: fn(&Patched) -> f64| patched.iter().map(f).collect::<Vec<f64>>();
    vec![
        (
            "      watch's total (first event -> applied)",
            column(|s| s.watch_total),
            "",
        ),
        ("      debounce", column(|s| s.debounce), ""),
        ("      rustc", column(|s| s.rustc), ""),
        ("      checks", column(|s| s.checks), ""),
        ("      link", column(|s| s.link), ""),
        ("      apply", column(|s| s.apply), ""),
    ]
}

/// A sample's split as the benchmarks print it per iteration.
pub fn describe_patched(sample: &Patched) -> String {
    format!(
        "save->new {:.1} ms (watch: {:.0} ms; debounce {:.1}, rustc {:.1}, checks {:.1}, link {:.1}, apply {:.1})",
        sample.save_to_new,
        sample.watch_total,
        sample.debounce,
        sample.rustc,
        sample.checks,
        sample.link,
        sample.apply
    )
}

/// The median size in bytes of the patch files watch wrote.
pub fn median_size(sizes: &[u64]) -> f64 {
    median(&sizes.iter().map(|&size| size as f64).collect::<Vec<f64>>())
}

/// `cargo hotpatch watch -p PACKAGE` with its app; both are killed when this is dropped.
pub struct Watch {
    pub process: ToolProcess,
}

impl Watch {
    /// Starts `watch` and waits for the app's first line and watch's `Watching`.
    pub fn start(fixture: &Fixture) -> Self {
        let mut watch = Watch {
            process: ToolProcess::start(fixture, "watch"),
        };
        watch.wait_for_stderr(0, false, |text| text.contains("Watching").then_some(()));
        watch
    }

    /// How much watch has printed on stderr: what it says after an edit starts there.
    pub fn mark(&self) -> usize {
        self.process.stderr_text().len()
    }

    /// Watch's split of the first patch it reports after `mark`, once its line is whole; panics
    /// on what would spoil the measurement (an error, a warning such as a restart).
    pub fn patched_since(&mut self, mark: usize) -> Patched {
        self.wait_for_stderr(mark, true, |said| {
            let line = said
                .lines()
                .find(|line| line.trim().starts_with("Patched "))?;
            // Only a whole line.
            said.contains(&format!("{line}\n")).then_some(())?;
            Some(
                parse_patched(line).unwrap_or_else(|| panic!("cannot parse watch's line {line:?}")),
            )
        })
    }

    /// Panics unless the process answering on the control socket is still the app watch started.
    pub fn assert_not_restarted(&mut self) {
        let pid = self.process.hello();
        if Some(pid) != self.process.run.pid {
            panic!(
                "the app was restarted (pid {pid}), not patched\n{}",
                self.process.describe()
            );
        }
    }

    /// The size of the patch file watch wrote last (`patch-N.hotpatch` in its directory, which
    /// other runs in the same target directory share: the newest), which must be newer than
    /// `since`.
    pub fn last_patch_size(&self, fixture: &Fixture, since: SystemTime) -> u64 {
        let dir = fixture
            .target()
            .join("hotpatch")
            .join(fixture.profile().name())
            .join("watch");
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()));
        let (modified, size) = entries
            .filter_map(Result::ok)
            .filter(|entry| {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                name.starts_with("patch-") && name.ends_with(".hotpatch")
            })
            .filter_map(|entry| {
                let metadata = entry.metadata().ok()?;
                Some((metadata.modified().ok()?, metadata.len()))
            })
            .max_by_key(|(modified, _)| *modified)
            .unwrap_or_else(|| panic!("watch wrote no patch file in {}", dir.display()));
        assert!(
            modified >= since,
            "watch wrote no patch file in {} for this edit",
            dir.display()
        );
        size
    }

    /// Waits until watch's stderr after `from` bytes gives `found` something; if `strict`,
    /// panics on what would spoil the measurement (an error, a warning such as a restart).
    pub fn wait_for_stderr<T>(
        &mut self,
        from: usize,
        strict: bool,
        found: impl Fn(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + WATCH_PATCHES;
        loop {
            let text = self.process.stderr_text();
            let said = text.get(from..).unwrap_or_default();
            if let Some(value) = found(said) {
                return value;
            }
            assert!(
                !strict || !(said.contains("error") || said.contains("warning:")),
                "watch reported a problem\n{}",
                self.process.describe()
            );
            assert!(
                Instant::now() < deadline,
                "timed out waiting on watch\n{}",
                self.process.describe()
            );
            self.process.lines.drain();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until watch has had no child but the app and its waiting compilers for a while: no
    /// rustc (its base functions compiled in the background, or a patch build) competes with the
    /// next edit.
    pub fn settle(&mut self) {
        let deadline = Instant::now() + WATCH_PATCHES;
        let mut quiet_since: Option<Instant> = None;
        loop {
            let busy = children_of(self.process.run.tool.id())
                .into_iter()
                .any(|child| Some(child) != self.process.run.pid && !waits_for_arguments(child));
            if busy {
                quiet_since = None;
            } else if quiet_since.get_or_insert_with(Instant::now).elapsed() >= QUIET {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "watch stayed busy\n{}",
                self.process.describe()
            );
            self.process.lines.drain();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A duration as watch prints it (`850µs`, `231ms`, `1.42s`, `2m05s`), in milliseconds.
fn parse_duration_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Some((minutes, seconds)) = text
        .split_once('m')
        .filter(|(_, s)| s.len() > 1 && s.ends_with('s'))
    {
        let minutes: f64 = minutes.parse().ok()?;
        return Some(minutes * 60e3 + parse_duration_ms(seconds)?);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "ns" => 1e-6,
        "µs" | "us" | "μs" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" | "min" => 60e3,
        _ => return None,
    };
    Some(number * scale)
}

/// The split of watch's `Patched CRATES in X (debounce D, rustc R, checks C, link L, apply A)`.
fn parse_patched(line: &str) -> Option<Patched> {
    let rest = line.trim().strip_prefix("Patched")?.trim();
    let (head, split) = rest.split_once(" (")?;
    let (_crates, total) = head.rsplit_once(" in ")?;
    let split = split.trim().strip_suffix(')')?;
    let field = |name: &str| {
        split.split(',').find_map(|part| {
            let (key, value) = part.trim().split_once(' ')?;
            (key == name).then(|| parse_duration_ms(value))?
        })
    };
    Some(Patched {
        save_to_new: f64::NAN,
        watch_total: parse_duration_ms(total)?,
        debounce: field("debounce")?,
        rustc: field("rustc")?,
        checks: field("checks")?,
        link: field("link")?,
        apply: field("apply")?,
    })
}
