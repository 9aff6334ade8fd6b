//! The tool's invocation: `cargo-hotpatch hotpatch ARGS` on a fixture, run to completion
//! ([`ToolOutput`]: what it printed and how it exited) or left running ([`ToolRun`]: `run` or
//! `watch` with the app it started).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use hotreload_runtime::wire::protocol::StatusReport;

use crate::process::{collect_output, parent_of, stop_tool_and_app, tail};
use crate::{hello, Fixture};

impl Fixture {
    /// `cargo-hotpatch hotpatch ARGS`, run to completion.
    pub fn tool(&self, args: &[&str]) -> ToolOutput {
        let output = self
            .tool_command(args)
            .stdin(Stdio::null())
            .output()
            .expect("running cargo-hotpatch");
        ToolOutput::new(args, output)
    }

    /// `cargo-hotpatch hotpatch ARGS`, not yet started.
    pub fn tool_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.tool);
        command
            .arg("hotpatch")
            .args(args)
            .current_dir(self.root())
            .env("CARGO_TARGET_DIR", &self.target)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// The tool under test.
    pub fn tool_path(&self) -> &Path {
        &self.tool
    }

    /// `build` of the current sources against the running base (of the fixture's profile) into
    /// `file`, whatever its outcome: the patch's path and what the tool printed.
    pub fn build(&self, file: &str) -> (PathBuf, ToolOutput) {
        self.build_with(file, &[])
    }

    /// [`Fixture::build`] with more arguments (`--sign KEY`).
    pub fn build_with(&self, file: &str, extra: &[&str]) -> (PathBuf, ToolOutput) {
        let path = self.root().join(file);
        let manifest = self.manifest();
        let mut args = vec![
            "build",
            "--manifest-path",
            manifest.to_str().unwrap(),
            "-p",
            self.package,
            "-o",
            path.to_str().unwrap(),
        ];
        args.extend(self.profile.args());
        args.extend(extra);
        let output = self.tool(&args);
        (path, output)
    }

    /// `build` that must succeed; returns the patch.
    pub fn build_patch(&self, file: &str) -> PathBuf {
        let (path, output) = self.build(file);
        output.success();
        assert!(path.is_file(), "`build` wrote no {}", path.display());
        path
    }

    /// `build --message-format json` that must be refused as needing a restart for the reason
    /// `refusal` (a refusal kind, `layout-changed`): exit code 3, the final JSON record naming
    /// both, and no file written. Returns its output.
    pub fn build_refused(&self, file: &str, refusal: &str) -> ToolOutput {
        let (path, output) = self.build_with(file, &["--message-format", "json"]);
        let output = output.needs_restart(refusal);
        assert!(
            !path.exists(),
            "a refused `build` still wrote {}",
            path.display()
        );
        output
    }

    pub fn apply(&self, patch: &Path) -> ToolOutput {
        self.tool(&[
            "apply",
            patch.to_str().unwrap(),
            "--target",
            self.socket().to_str().unwrap(),
        ])
    }

    pub fn rollback(&self) -> ToolOutput {
        self.tool(&["rollback", "--target", self.socket().to_str().unwrap()])
    }

    pub fn status(&self) -> StatusReport {
        let output = self
            .tool(&[
                "status",
                "--message-format",
                "json",
                "--target",
                self.socket().to_str().unwrap(),
            ])
            .success();
        serde_json::from_str(output.stdout.trim()).unwrap_or_else(|error| {
            panic!(
                "`status --message-format json` printed no StatusReport ({error}):\n{}",
                output.stdout
            )
        })
    }
}

/// What a finished `cargo-hotpatch` printed.
pub struct ToolOutput {
    command: String,
    code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    pub fn new(args: &[&str], output: Output) -> Self {
        Self::of_command(format!("cargo hotpatch {}", args.join(" ")), output)
    }

    /// The output of any `command` (as it is shown in messages).
    pub fn of_command(command: String, output: Output) -> Self {
        ToolOutput {
            command,
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "`{}` exited with {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    /// Whether it exited with 0.
    pub fn succeeded(&self) -> bool {
        self.code == Some(0)
    }

    pub fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "expected success: {}", self.describe());
        self
    }

    pub fn failure(self) -> Self {
        assert!(
            self.code.is_some_and(|code| code != 0),
            "expected a non-zero exit: {}",
            self.describe()
        );
        self
    }

    /// Asserts that it exited with `code`.
    pub fn exit_code(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}: {}",
            self.describe()
        );
        self
    }

    /// The final record a failed command prints on stdout with `--message-format json`:
    /// `{"reason":"error","kind":..,"exit_code":..,"refusal":..,..}`. Asserts that it is one and
    /// that its `exit_code` is the process's.
    pub fn error_record(&self) -> serde_json::Value {
        let last = self
            .stdout
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty());
        let record: serde_json::Value = last
            .and_then(|line| serde_json::from_str(line).ok())
            .unwrap_or_else(|| panic!("expected a final JSON record: {}", self.describe()));
        assert_eq!(
            record["reason"],
            "error",
            "the final record is an error: {}",
            self.describe()
        );
        assert_eq!(
            record["exit_code"].as_i64(),
            self.code.map(i64::from),
            "the record's exit code is the process's: {}",
            self.describe()
        );
        record
    }

    /// Asserts that it exited with 3, the change needing a restart, and that (run with
    /// `--message-format json`) its final record names that kind and the reason `refusal`.
    pub fn needs_restart(self, refusal: &str) -> Self {
        let output = self.exit_code(3);
        let record = output.error_record();
        assert_eq!(
            record["kind"],
            "needs-restart",
            "the record's kind: {}",
            output.describe()
        );
        assert_eq!(
            record["refusal"],
            refusal,
            "the record's refusal: {}",
            output.describe()
        );
        output
    }

    /// Asserts that it exited with 5, a target refusing, and that (run with
    /// `--message-format json`) its final record names that kind.
    pub fn target_refused(self) -> Self {
        let output = self.exit_code(5);
        let record = output.error_record();
        assert_eq!(
            record["kind"],
            "target-refused",
            "the record's kind: {}",
            output.describe()
        );
        output
    }

    /// Asserts that stderr mentions each of `needles`.
    pub fn stderr_names(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "expected stderr to mention `{needle}`: {}",
                self.describe()
            );
        }
        self
    }
}

/// `cargo hotpatch COMMAND` (`run` or `watch`) of the fixture's package, with the app it
/// started; both are killed when this is dropped.
pub struct ToolRun {
    /// `run` or `watch`.
    pub command: String,
    pub tool: Child,
    stderr: Arc<Mutex<String>>,
    pub socket: PathBuf,
    /// The app's pid, from `hello`.
    pub pid: Option<u32>,
}

impl ToolRun {
    /// Starts `cargo hotpatch COMMAND -p PACKAGE` with the fixture's profile and `extra`
    /// arguments; returns it with the app's stdout.
    pub fn start(fixture: &Fixture, command: &str, extra: &[&str]) -> (Self, ChildStdout) {
        let manifest = fixture.manifest();
        let mut args = vec![
            command,
            "--manifest-path",
            manifest.to_str().unwrap(),
            "-p",
            fixture.package(),
        ];
        args.extend(fixture.profile().args());
        args.extend(extra);
        let mut tool = fixture
            .tool_command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: the guard can end cargo and rustc too if a build hangs.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("starting `cargo hotpatch {command}`: {error}"));
        let stdout = tool.stdout.take().expect("the tool's stdout");
        let stderr = collect_output(tool.stderr.take().expect("the tool's stderr"));
        let run = ToolRun {
            command: command.to_owned(),
            tool,
            stderr,
            socket: fixture.socket(),
            pid: None,
        };
        (run, stdout)
    }

    /// Once the app printed: asks its pid on the control socket and checks that it is the app
    /// this tool started.
    pub fn adopt_app(&mut self) -> u32 {
        let pid = hello(&self.socket)
            .unwrap_or_else(|error| panic!("`hello` on the control socket failed: {error}"));
        assert_eq!(
            parent_of(pid),
            Some(self.tool.id()),
            "the process answering on {} (pid {pid}) is not the app started by `{}`",
            self.socket.display(),
            self.command
        );
        self.pid = Some(pid);
        pid
    }

    /// Everything the tool printed on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The last few thousand bytes the tool printed on stderr.
    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr_text(), 4000).to_owned()
    }
}

impl Drop for ToolRun {
    fn drop(&mut self) {
        stop_tool_and_app(&mut self.tool, &self.socket, self.pid);
    }
}
