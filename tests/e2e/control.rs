//! End to end: the control socket of the fixture app, started directly, against clients that do
//! not play along. A silent client and one sending a byte now and then hold up no other; a named
//! pipe, a device or an oversized file given as a patch is refused at once; an empty trusted-key
//! list refuses every patch; a control group lets the allow-listed user in and the audit log
//! records who was refused; and descriptors and the status history stay bounded over many
//! patches, running out of descriptors being reported as what it is.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use cargo_hotpatch::remote::client;
use hotreload_tests::{
    locations, read_lines, wait_for_text, Fixture, PatchFile, PatchSignature, Profile,
};
use hotreload_tests::{RunningApp, StatusReport};

/// `nobody` and its group `nogroup` on Debian.
const NOBODY: u32 = 65534;
/// A user that is in group `nogroup` (its primary group here) but on no allow-list.
const STRANGER: u32 = 65533;
/// The server's deadline for a whole request line (`control/server.rs`).
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// One fixture app started from the built binary with its own control socket.
struct Instance {
    child: Child,
    socket: PathBuf,
    _lines: Receiver<String>,
}

impl Instance {
    /// Starts the app with `env`, its socket in `dir`, with at most `max_files` descriptors.
    fn start(
        fixture: &Fixture,
        dir: &Path,
        name: &str,
        env: &[(&str, &str)],
        max_files: Option<u64>,
    ) -> Self {
        let socket = dir.join(format!("{name}.sock"));
        let mut command = Command::new(fixture.target().join("debug").join(fixture.package()));
        command
            .env("HOTRELOAD_CONTROL_SOCKET", &socket)
            // Its patches redirect entries of functions that are not `#[hot]` too (issue 14).
            .env("HOTRELOAD_ALLOW_ENTRY_REDIRECTS", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(max) = max_files {
            // SAFETY: `setrlimit` is async-signal-safe and touches only the child, between fork
            // and exec.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: max,
                        rlim_max: max,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().expect("starting the app");
        let lines = read_lines(child.stdout.take().unwrap());
        let first = lines.recv_timeout(Duration::from_secs(30));
        assert!(first.is_ok(), "{name} printed no first tick");
        let deadline = Instant::now() + Duration::from_secs(10);
        while client::status(&socket).is_err() {
            assert!(Instant::now() < deadline, "{name} never answered `status`");
            std::thread::sleep(Duration::from_millis(20));
        }
        Instance {
            child,
            socket,
            _lines: lines,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn status(&self) -> StatusReport {
        client::status(&self.socket).expect("status")
    }

    /// The descriptors the app has open now.
    fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("the app's /proc/PID/fd")
            .count()
    }

    /// The descriptors the app keeps open: the fewest seen over half a second (a connection
    /// just answered may not be closed yet).
    fn kept_descriptors(&self) -> usize {
        (0..10)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(50));
                self.open_descriptors()
            })
            .min()
            .unwrap()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory every user can enter, for sockets other users connect to.
fn shared_dir(fixture: &Fixture) -> PathBuf {
    let dir = fixture.root().join("sockets");
    std::fs::create_dir_all(&dir).unwrap();
    for open in [fixture.root(), dir.as_path()] {
        std::fs::set_permissions(open, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// `what` run on a thread: its result if it came within `within`, or what it was waiting for.
fn within<T: Send + 'static>(
    within: Duration,
    what: &str,
    run: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (sender, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(run());
    });
    result
        .recv_timeout(within)
        .unwrap_or_else(|_| panic!("{what} took longer than {within:?}"))
}

/// The error text of a request that must be refused.
fn refusal<T: std::fmt::Debug, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> String {
    match result {
        Ok(reply) => panic!("{what} was accepted: {reply:?}"),
        Err(error) => format!("{error:#}"),
    }
}

#[test]
fn the_control_socket_serves_every_client_and_refuses_what_it_must() {
    let fixture = Fixture::new(locations!(), Profile::Dev);
    // `run` builds the host and records the base; the instances run that same binary.
    drop(RunningApp::start(&fixture));
    fixture.edit_all(
        "logic/src/lib.rs",
        &[("\"v1\"", "\"v2\""), ("failure from v1", "failure from v2")],
    );
    let v2 = fixture.build_patch("v2.hotpatch");
    let dir = shared_dir(&fixture);

    let app = Instance::start(&fixture, &dir, "plain", &[], None);
    a_silent_and_a_dripping_client_hold_up_no_other(&app);
    pipes_devices_and_huge_files_are_refused_at_once(&fixture, &app);
    drop(app);
    an_empty_trusted_key_list_refuses_every_patch(&fixture, &dir, &v2);
    the_control_group_lets_the_allowed_user_in(&fixture, &dir);
    descriptors_and_history_stay_bounded(&fixture, &dir, &v2);
}

fn a_silent_and_a_dripping_client_hold_up_no_other(app: &Instance) {
    let opened = Instant::now();
    let silent = UnixStream::connect(&app.socket).unwrap();
    let dripping = UnixStream::connect(&app.socket).unwrap();
    let mut drip = dripping.try_clone().unwrap();
    let dripper = std::thread::spawn(move || {
        // A byte a second, never a whole line: every single read is prompt.
        for byte in br#"{"command":"status""#.iter().cycle().take(60) {
            if drip.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let socket = app.socket.clone();
    let report = within(
        Duration::from_secs(5),
        "`status` beside two stalling clients",
        move || client::status(&socket),
    );
    assert!(report.is_ok(), "{report:?}");
    // Both stalling clients are told, and closed, at the request deadline.
    for (name, stream) in [("silent", silent), ("dripping", dripping)] {
        stream
            .set_read_timeout(Some(REQUEST_DEADLINE + Duration::from_secs(5)))
            .unwrap();
        let mut answer = String::new();
        let _ = (&stream).read_to_string(&mut answer);
        assert!(
            answer.contains("no complete request line arrived within"),
            "the {name} client is told why it is closed: {answer:?}"
        );
        assert!(
            opened.elapsed() < REQUEST_DEADLINE + Duration::from_secs(5),
            "the {name} client was closed after {:?}",
            opened.elapsed()
        );
    }
    dripper.join().unwrap();
}

fn pipes_devices_and_huge_files_are_refused_at_once(fixture: &Fixture, app: &Instance) {
    let fifo = fixture.root().join("pipe.hotpatch");
    let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `name` is a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
    let huge = fixture.root().join("huge.hotpatch");
    // Sparse: 300 MB of size, no disk.
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    for (patch, says) in [
        (fifo, "named pipe"),
        (PathBuf::from("/dev/zero"), "a device"),
        (huge, "bytes a patch file may have"),
    ] {
        for apply in [false, true] {
            let socket = app.socket.clone();
            let path = patch.clone();
            let result = within(
                Duration::from_secs(5),
                &format!("{}", patch.display()),
                move || {
                    if apply {
                        client::apply(&socket, &path)
                    } else {
                        client::check(&socket, &path)
                    }
                },
            );
            let error = refusal(result, &patch.display().to_string());
            assert!(
                error.contains("refused at step `read`") && error.contains(says),
                "{}: {error}",
                patch.display()
            );
        }
    }
    assert!(app.status().history.is_empty(), "nothing was applied");
}

/// A copy of `patch` signed by a fresh key.
fn signed_copy(patch: &Path) -> PathBuf {
    use ed25519_dalek::Signer as _;
    let mut signed = PatchFile::parse(&std::fs::read(patch).unwrap()).unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    signed.signature = Some(PatchSignature {
        public_key: key.verifying_key().to_bytes(),
        signature: key.sign(&signed.signed_message()).to_bytes(),
    });
    let path = patch.with_file_name("signed.hotpatch");
    std::fs::write(&path, signed.to_bytes()).unwrap();
    path
}

fn an_empty_trusted_key_list_refuses_every_patch(fixture: &Fixture, dir: &Path, v2: &Path) {
    let signed = signed_copy(v2);
    for (name, keys) in [("no-keys", ""), ("separators", " , ,\n")] {
        let app = Instance::start(
            fixture,
            dir,
            name,
            &[("HOTRELOAD_TRUSTED_KEYS", keys)],
            None,
        );
        for patch in [v2, signed.as_path()] {
            let error = refusal(client::check(&app.socket, patch), "check");
            assert!(
                error.contains("refused at step `authenticity`") && error.contains("names no key"),
                "HOTRELOAD_TRUSTED_KEYS={keys:?}: {error}"
            );
            let error = refusal(client::apply(&app.socket, patch), "apply");
            assert!(error.contains("names no key"), "{error}");
        }
        assert!(app.status().history.is_empty(), "nothing was applied");
    }
}

/// `status` of `socket` asked by the tool under test running as `uid` (group `nogroup`).
fn status_as(fixture: &Fixture, uid: u32, socket: &Path) -> std::process::Output {
    Command::new(fixture.tool_path())
        .args(["hotpatch", "status", "--target", socket.to_str().unwrap()])
        .uid(uid)
        .gid(NOBODY)
        .env_clear()
        .current_dir("/")
        .output()
        .expect("running the tool as another user")
}

fn the_control_group_lets_the_allowed_user_in(fixture: &Fixture, dir: &Path) {
    // SAFETY: `geteuid` has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped the control group step: running a client as another user needs root (CI runs as root)");
        return;
    }
    let log = dir.join("audit.jsonl");
    let app = Instance::start(
        fixture,
        dir,
        "grouped",
        &[
            ("HOTRELOAD_CONTROL_GROUP", "nogroup"),
            ("HOTRELOAD_ALLOWED_UIDS", &NOBODY.to_string()),
            ("HOTRELOAD_AUDIT_LOG", log.to_str().unwrap()),
        ],
        None,
    );
    let mode = std::fs::metadata(&app.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660, "the socket is open to its group");
    let allowed = status_as(fixture, NOBODY, &app.socket);
    let said = String::from_utf8_lossy(&allowed.stdout);
    assert!(
        allowed.status.success() && said.contains(&format!("pid {}", app.pid())),
        "the allowed user gets the status: {said}\n{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    // Closed unanswered: before it sent its request (a broken pipe) or after.
    let stranger = status_as(fixture, STRANGER, &app.socket);
    let said = String::from_utf8_lossy(&stranger.stderr);
    assert!(
        !stranger.status.success()
            && (said.contains("closed the connection without answering")
                || said.contains("Broken pipe")),
        "a group member not on the allow-list is refused: {said}"
    );
    let audit = std::fs::read_to_string(&log).unwrap();
    let refused: Vec<serde_json::Value> = audit
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|entry: &serde_json::Value| entry["result"] == "refused")
        .collect();
    assert!(
        refused.len() == 1 && refused[0]["peer"]["uid"] == STRANGER,
        "the refused peer is in the audit log: {audit}"
    );
    let mode = std::fs::metadata(&log).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the audit log is its owner's only");
}

/// A copy of `patch` with another id (its manifest's build time changed), so loading it opens
/// one more library.
fn variant(patch: &Path, index: u64) -> PathBuf {
    let parsed = PatchFile::parse(&std::fs::read(patch).unwrap()).unwrap();
    let mut manifest = parsed.manifest;
    manifest.created_unix += index + 1;
    let path = patch.with_file_name(format!("variant-{index}.hotpatch"));
    std::fs::write(&path, PatchFile::new(manifest, parsed.library).to_bytes()).unwrap();
    path
}

/// How many patches the app loads; more than its descriptor limit allows open at once.
const CYCLES: u64 = 40;
const MAX_FILES: u64 = 40;

fn descriptors_and_history_stay_bounded(fixture: &Fixture, dir: &Path, v2: &Path) {
    let app = Instance::start(
        fixture,
        dir,
        "bounded",
        &[("FIXTURE_TICK_MS", "10")],
        Some(MAX_FILES),
    );
    let before = app.kept_descriptors();
    for index in 0..CYCLES {
        let patch = variant(v2, index);
        let applied = client::apply(&app.socket, &patch);
        assert!(applied.is_ok(), "patch {index}: {applied:?}");
        client::rollback(&app.socket).expect("rollback");
        let _ = std::fs::remove_file(&patch);
    }
    let after = app.kept_descriptors();
    assert!(
        after <= before + 1,
        "{CYCLES} patches loaded: {before} descriptors before, {after} after"
    );
    let status = app.status();
    let size = serde_json::to_string(&status).unwrap().len();
    assert_eq!(status.history.len(), 64, "the last 64 entries are listed");
    assert!(
        size < 64 * 1024,
        "the status reply stays small: {size} bytes"
    );
    assert_eq!(
        status.history_dropped,
        2 * CYCLES - 64,
        "the earlier ones are counted"
    );
    println!("status after {CYCLES} apply/rollback cycles: {size} bytes, {after} descriptors");
    running_out_of_descriptors_says_so(&app, v2);
}

/// Lowers the app's descriptor limit until a patch cannot be loaded: the refusal says the
/// process is out of descriptors, not that the patch is bad; with the limit back it applies.
fn running_out_of_descriptors_says_so(app: &Instance, v2: &Path) {
    let patch = variant(v2, CYCLES);
    let set_limit = |max: u64| {
        let limit = libc::rlimit {
            rlim_cur: max,
            rlim_max: MAX_FILES,
        };
        // SAFETY: `limit` is valid for the call; a null old limit is allowed.
        let rc = unsafe {
            libc::prlimit(
                app.pid() as libc::pid_t,
                libc::RLIMIT_NOFILE,
                &limit,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    };
    let mut said = None;
    // The connection itself needs two descriptors: find the limit at which it is answered.
    for extra in 1..6 {
        set_limit((app.kept_descriptors() + extra) as u64);
        match client::apply(&app.socket, &patch) {
            Ok(report) => panic!("applied with {extra} descriptor(s) to spare: {report:?}"),
            Err(error) if closed_unanswered(&error) => continue,
            Err(error) => {
                said = Some(format!("{error:#}"));
                break;
            }
        }
    }
    set_limit(MAX_FILES);
    let said = said.expect("an answer with a few descriptors to spare");
    assert!(
        said.contains("out of file descriptors") && !said.contains("rebuild the patch"),
        "running out of descriptors is reported as such: {said}"
    );
    client::apply(&app.socket, &patch).expect("with its limit back the patch applies");
}

/// Whether `apply` failed because the process closed the connection without answering (before
/// it read the request: a broken pipe, or after), whatever its status said afterwards.
fn closed_unanswered(error: &impl std::fmt::Display) -> bool {
    let said = format!("{error:#}");
    said.contains("closed the connection without answering") || said.contains("Broken pipe")
}

/// A process of the same user that connects to `watch`'s link and plays the app: it answers
/// `hello` with the app's build and acknowledges every `apply` without applying anything. Facing
/// a tool that asks it to prove the app's secret first, it tries a made-up proof. Returns how
/// many `apply` requests it was sent.
fn impostor(link: PathBuf, build_id: String) -> std::thread::JoinHandle<usize> {
    use hotreload_runtime::wire::protocol::{PatchReport, Reply, Request, Response};
    std::thread::spawn(move || {
        let stream = UnixStream::connect(&link).expect("connecting to watch's link");
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut line = String::new();
        reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let spoken_first = std::io::BufRead::read_line(&mut reader, &mut line).is_ok();
        reader.get_ref().set_read_timeout(None).unwrap();
        if !spoken_first {
            // The tool waits for a challenge: send one, and a proof made up without the secret.
            let _ = writer.write_all(b"{\"challenge\":\"00112233\"}\n");
            let _ = std::io::BufRead::read_line(&mut reader, &mut line);
            let proof = format!("{{\"proof\":\"{}\"}}\n", "ab".repeat(32));
            let _ = writer.write_all(proof.as_bytes());
            line.clear();
            if !matches!(std::io::BufRead::read_line(&mut reader, &mut line), Ok(n) if n > 0) {
                return 0;
            }
        }
        let mut applies = 0;
        loop {
            let reply = match serde_json::from_str::<Request>(line.trim()) {
                Ok(Request::Hello) => Reply::Hello {
                    protocol: 1,
                    pid: 4242,
                    build_id: build_id.clone(),
                },
                Ok(Request::Apply { .. }) => {
                    applies += 1;
                    Reply::Patch(PatchReport {
                        patch_id: "0".repeat(64),
                        dry_run: false,
                        already_applied: false,
                        changes: Vec::new(),
                        states: Vec::new(),
                        verify_us: 1,
                        load_us: 1,
                        commit_us: 1,
                        still_running: Vec::new(),
                        entries: None,
                    })
                }
                _ => return applies,
            };
            let mut answer = serde_json::to_string(&Response::Ok(reply)).unwrap();
            answer.push('\n');
            if writer.write_all(answer.as_bytes()).is_err() {
                return applies;
            }
            line.clear();
            if !matches!(std::io::BufRead::read_line(&mut reader, &mut line), Ok(n) if n > 0) {
                return applies;
            }
        }
    })
}

/// The environment `pid` was started with, as other processes of its user can read it.
fn environment_of(pid: u32) -> Vec<(String, String)> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .expect("the app's /proc/PID/environ")
        .split(|&b| b == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (key, value) = entry.split_once('=')?;
            Some((key.to_owned(), value.to_owned()))
        })
        .collect()
}

#[test]
fn watch_refuses_an_impostor_on_its_link_and_patches_its_own_app() {
    use hotreload_runtime::wire::protocol::{Reply, Request};
    let fixture = Fixture::new(locations!(), Profile::Dev);
    let mut app = RunningApp::start_with(&fixture, "watch");
    let wait_for_stderr = |app: &mut RunningApp, from: usize, needle: &str| {
        wait_for_text(
            || {
                app.drain();
                app.stderr_text()
            },
            from,
            needle,
        )
    };
    wait_for_stderr(&mut app, 0, "Connected");
    app.wait_until_watch_is_ready();
    let pid = app.pid().expect("the app's pid");
    let environment = environment_of(pid);
    let variable = |name: &str| {
        environment
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| panic!("the app's environment has no {name}"))
    };
    let link = PathBuf::from(variable("HOTRELOAD_TOOL_SOCKET"));
    let secret = variable("HOTRELOAD_TOOL_SECRET");
    assert!(
        !secret.is_empty() && secret.bytes().all(|b| b == b'-'),
        "the app wiped the link's secret from its environment block: {secret}"
    );
    let Ok(Reply::Hello { build_id, .. }) = client::request(&fixture.socket(), &Request::Hello)
    else {
        panic!("the app answers hello");
    };

    let mark = app.stderr_text().len();
    let impostor = impostor(link, build_id);
    wait_for_stderr(&mut app, mark, "refused a connection to the tool's socket");
    fixture.edit_all(
        "logic/src/lib.rs",
        &[("\"v1\"", "\"v2\""), ("failure from v1", "failure from v2")],
    );
    app.wait_for_version("v2");
    wait_for_stderr(&mut app, mark, "Patched");
    let applies = impostor.join().unwrap();
    assert_eq!(applies, 0, "the impostor was sent no patch");
}
