//! The documented exit codes and the quiet exit on a closed stdout, checked on the built binary
//! against a stand-in process: a socket that speaks the control protocol with canned answers.

use std::io::{BufRead, BufReader, Read as _, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;

use hotreload_runtime::wire::protocol::{
    ErrorReply, FunctionChange, HistoryItem, PatchReport, Reply, Request, Response, StatusReport,
};

fn tool() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cargo-hotpatch"));
    command.arg("hotpatch");
    command
}

/// A process's control socket at `dir/control.sock` that answers every request with `answer`,
/// once `go` says so (or at once if the sender is dropped).
fn stand_in(
    dir: &Path,
    answer: impl Fn(&Request) -> Response + Send + 'static,
    go: mpsc::Receiver<()>,
) -> PathBuf {
    let socket = dir.join("control.sock");
    let listener = UnixListener::bind(&socket).expect("binding the stand-in's socket");
    std::thread::spawn(move || {
        let _ = go.recv();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let request: Request = serde_json::from_str(&line).expect("a request");
            let mut reply = serde_json::to_string(&answer(&request)).unwrap();
            reply.push('\n');
            let _ = reader.get_mut().write_all(reply.as_bytes());
        }
    });
    socket
}

fn answering(dir: &Path, answer: impl Fn(&Request) -> Response + Send + 'static) -> PathBuf {
    let (_go, wait) = mpsc::channel();
    stand_in(dir, answer, wait)
}

fn refusal(_: &Request) -> Response {
    Response::Error(ErrorReply {
        step: "signature".into(),
        message: "the patch is not signed by a trusted key".into(),
    })
}

fn patch_report(dry_run: bool) -> PatchReport {
    PatchReport {
        patch_id: "0123456789abcdef".into(),
        dry_run,
        already_applied: false,
        changes: vec![FunctionChange {
            key: "logic::fee".into(),
            from: 0,
            to: 1,
        }],
        states: Vec::new(),
        verify_us: 1,
        load_us: 1,
        commit_us: 1,
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_unparsable_command_line_exits_with_2() {
    let output = tool().arg("--no-such-flag").output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn help_lists_the_exit_codes() {
    let output = tool().arg("--help").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for line in [
        "Exit codes:",
        "3  the change cannot be patched",
        "5  a target refused the patch",
        "6  a rollout failed and every target it patched was rolled back",
    ] {
        assert!(help.contains(line), "`{line}` missing from --help:\n{help}");
    }
}

#[test]
fn a_target_that_refuses_the_check_exits_with_5_and_json_names_the_kind() {
    let dir = tempfile::tempdir().unwrap();
    let socket = answering(dir.path(), refusal);
    let output = tool()
        .args([
            "check",
            "patch.hotpatch",
            "--message-format",
            "json",
            "--target",
        ])
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(stderr(&output).contains("refused at step `signature`"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let record: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(record["reason"], "error");
    assert_eq!(record["kind"], "target-refused");
    assert_eq!(record["exit_code"], 5);
}

#[test]
fn a_rollout_refused_at_its_check_exits_with_5() {
    let dir = tempfile::tempdir().unwrap();
    let socket = answering(dir.path(), refusal);
    let output = tool()
        .args(["apply", "patch.hotpatch", "--target"])
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(stderr(&output).contains("nothing was applied"));
}

#[test]
fn a_rollout_whose_health_check_fails_is_rolled_back_and_exits_with_6() {
    let dir = tempfile::tempdir().unwrap();
    let socket = answering(dir.path(), |request| {
        Response::Ok(match request {
            Request::Check { .. } => Reply::Patch(patch_report(true)),
            Request::Apply { .. } => Reply::Patch(patch_report(false)),
            _ => Reply::RolledBack(patch_report(false)),
        })
    });
    let output = tool()
        .args(["apply", "patch.hotpatch", "--health", "exit 1", "--target"])
        .arg(&socket)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("rolled back"));
}

#[test]
fn a_closed_stdout_ends_quietly_with_0() {
    let dir = tempfile::tempdir().unwrap();
    let (go, wait) = mpsc::channel();
    let socket = stand_in(
        dir.path(),
        |_| {
            let item = HistoryItem {
                update_id: 1,
                label: "0123456789abcdef".into(),
                action: "committed".into(),
                at_unix: 0,
                changes: Vec::new(),
                states: Vec::new(),
            };
            Response::Ok(Reply::Status(StatusReport {
                pid: 1,
                build_id: "feedface".into(),
                functions: Vec::new(),
                patches: Vec::new(),
                history: vec![item; 1000],
                states: Vec::new(),
                mapped_bytes: 0,
            }))
        },
        wait,
    );
    let mut child = tool()
        .args(["history", "--target"])
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the tool has anything to write (`| head -0`).
    drop(child.stdout.take());
    go.send(()).unwrap();
    let mut errors = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut errors)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{errors}");
    assert!(errors.is_empty(), "expected a quiet exit, got:\n{errors}");
}
