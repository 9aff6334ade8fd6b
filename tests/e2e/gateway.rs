//! End to end: the gateway example with real client connections. A patch that changes the
//! `#[hot_state]` session's layout and the `#[hot]` handler is applied while clients keep sending
//! requests: no connection drops, no session loses data, a request in flight completes on the old
//! code; then a rollback with the same guarantees. A failing migration changes nothing, and a
//! layout change without a version bump is refused at build.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hotreload_tests::{
    locations, read_lines, spawn_app, wait_for_text, Fixture, PatchFile, PatchSignature, Profile,
    StatusReport, ToolOutput, ToolRun,
};

const CLIENTS: usize = 16;
pub(crate) const V2: &str = include_str!("../fixtures/gateway/lib_v2.rs");
pub(crate) const V3: &str = include_str!("../fixtures/gateway/lib_v3.rs");

/// Version 2 whose migration refuses the session of user `mallory`.
fn v2_failing_for_mallory() -> String {
    let carry_over = "        // Every field carries over; sessions start on the free tier.\n";
    assert!(V2.contains(carry_over));
    V2.replace(
        carry_over,
        "        if old.user.as_deref() == Some(\"mallory\") {\n            return Err(MigrationError::new(\"mallory's session cannot be migrated\"));\n        }\n",
    )
}

/// Where the gateway listens, from the first line it prints; `said` tells what went wrong.
pub(crate) fn listening_address(
    lines: &Receiver<String>,
    within: Duration,
    said: impl Fn() -> String,
) -> String {
    let first = lines
        .recv_timeout(within)
        .unwrap_or_else(|_| panic!("the gateway never said where it listens:\n{}", said()));
    first
        .strip_prefix("gateway listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned()
}

/// The gateway run by `cargo hotpatch run` (or `watch`); ended when dropped.
pub(crate) struct Gateway {
    run: ToolRun,
    pub(crate) address: String,
    _lines: Receiver<String>,
}

impl Gateway {
    pub(crate) fn start(fixture: &Fixture) -> Self {
        Self::start_with(fixture, "run")
    }

    /// `cargo hotpatch COMMAND` (`run` or `watch`) of the gateway.
    pub(crate) fn start_with(fixture: &Fixture, command: &str) -> Self {
        let (run, stdout) = ToolRun::start(fixture, command, &[]);
        let lines = read_lines(stdout);
        let address = listening_address(&lines, Profile::Dev.first_build(), || run.stderr_text());
        Gateway {
            run,
            address,
            _lines: lines,
        }
    }

    /// Everything the tool printed on stderr so far.
    pub(crate) fn stderr_text(&self) -> String {
        self.run.stderr_text()
    }
}

/// A connection that sends a request and reads its reply.
pub(crate) struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    pub(crate) fn open(address: &str) -> Self {
        let stream = TcpStream::connect(address).expect("connecting to the gateway");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Connection {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    pub(crate) fn ask(&mut self, request: &str) -> Result<String, String> {
        self.writer
            .write_all(format!("{request}\n").as_bytes())
            .map_err(|e| format!("sending `{request}`: {e}"))?;
        let mut reply = String::new();
        match self.reader.read_line(&mut reply) {
            Ok(0) => Err(format!("the gateway closed the connection at `{request}`")),
            Ok(_) => Ok(reply.trim_end().to_owned()),
            Err(e) => Err(format!("reading the reply to `{request}`: {e}")),
        }
    }
}

/// A client sending `get` in a loop and checking each reply against what it sent: the session's
/// request count advances by exactly one and its notes stay.
pub(crate) struct Client {
    /// The version of the last reply.
    pub(crate) version: Arc<Mutex<String>>,
    thread: JoinHandle<Result<u64, String>>,
}

pub(crate) fn start_client(address: String, index: usize, stop: Arc<AtomicBool>) -> Client {
    let version = Arc::new(Mutex::new(String::new()));
    let seen = Arc::clone(&version);
    let thread = std::thread::spawn(move || -> Result<u64, String> {
        let mut connection = Connection::open(&address);
        let user = format!("user{index}");
        let note = format!("note{index}");
        let hello = connection.ask(&format!("login {user}"))?;
        if hello != format!("ok v1 hello {user}") {
            return Err(format!("login: {hello}"));
        }
        connection.ask(&format!("note {note}"))?;
        let mut sent = 2;
        while !stop.load(Ordering::Relaxed) {
            let reply = connection.ask("get")?;
            sent += 1;
            let Some(version) = version_answering(&reply, &user, sent, &note) else {
                return Err(format!(
                    "client {index}: after {sent} requests the gateway answered `{reply}`"
                ));
            };
            *seen.lock().unwrap() = version.to_owned();
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(sent)
    });
    Client { version, thread }
}

/// The gateway version (v1, v2 or v3) whose answer to `get` is `reply`, for a client named
/// `user` with `note` after `sent` requests; `None` for any other answer.
pub(crate) fn version_answering(
    reply: &str,
    user: &str,
    sent: u64,
    note: &str,
) -> Option<&'static str> {
    ["v1", "v2", "v3"].into_iter().find(|version| {
        let tier = if *version == "v1" { "" } else { " tier=Free" };
        reply == format!("ok {version} user={user} requests={sent} notes={note}{tier}")
    })
}

pub(crate) fn wait_until_all_see(clients: &[Client], version: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !clients
        .iter()
        .all(|c| *c.version.lock().unwrap() == version)
    {
        assert!(
            clients.iter().all(|c| !c.thread.is_finished()),
            "a client stopped while waiting for {version}"
        );
        assert!(
            Instant::now() < deadline,
            "not every client saw {version} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The reply to a request sent on a thread, with the connection for more.
type PendingReply = JoinHandle<(Result<String, String>, Connection)>;

/// Sends `slow MS` on a connection of its own and returns its reply when it comes.
fn slow_request(address: &str, millis: u64) -> (PendingReply, Instant) {
    let mut connection = Connection::open(address);
    connection.ask("login slowpoke").unwrap();
    let started = Instant::now();
    let thread = std::thread::spawn(move || {
        let reply = connection.ask(&format!("slow {millis}"));
        (reply, connection)
    });
    (thread, started)
}

#[test]
fn sessions_survive_a_layout_patch_and_its_rollback_with_clients_connected() {
    let mut fixture = Fixture::gateway(locations!(), Profile::Dev);
    // Threads in patched code for a second are named by `status`.
    fixture.set_env("HOTRELOAD_STUCK_THREAD_MS", "1000");
    let v1 = fixture.read("gateway/src/lib.rs");
    let gateway = Gateway::start(&fixture);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<Client> = (0..CLIENTS)
        .map(|i| start_client(gateway.address.clone(), i, Arc::clone(&stop)))
        .collect();
    wait_until_all_see(&clients, "v1");

    // A layout change without a version bump is refused at build, naming the type.
    a_layout_change_without_a_version_bump_is_refused(&fixture);
    // The patch: Session v2 (a field renamed, one added) and a new handler.
    let patch = the_v2_patch_is_checked(&fixture);
    // A request in flight when the patch comes completes on the old code.
    let mut slow_connection =
        the_patch_applies_under_a_request_in_flight(&fixture, &gateway, &clients, &patch);
    // Status shows the state's version and values, and the migration in the history.
    status_shows_the_migrated_sessions(&fixture, &mut slow_connection);
    // Rollback: every session goes back down to v1 with its data; the clients never notice.
    the_rollback_migrates_every_session_down(&fixture, &clients, &mut slow_connection);
    // A migration that fails on one session leaves every session as it was.
    a_failing_migration_changes_nothing(&fixture, &gateway, &clients);
    // A migration that never returns is abandoned at the commit's deadline, changing nothing.
    a_stuck_migration_is_abandoned_at_the_deadline(&fixture, &gateway, &clients);

    stop_clients(&stop, clients);
    // A handler that never returns: `status` names its thread, `rollback` says it still runs.
    a_handler_looping_forever_is_named(&fixture, &gateway, &v1);
    let stderr = gateway.stderr_text();
    assert!(
        !stderr.contains("connection from"),
        "no connection ended with an error:\n{stderr}"
    );
}

fn a_layout_change_without_a_version_bump_is_refused(fixture: &Fixture) {
    let v1 = std::fs::read_to_string(fixture.root().join("gateway/src/lib.rs")).unwrap();
    fixture.edit(
        "gateway/src/lib.rs",
        "    pub notes: Vec<String>,\n}",
        "    pub notes: Vec<String>,\n    pub flags: u32,\n}",
    );
    fixture
        .build_refused("unbumped.hotpatch", "state-version-kept")
        .stderr_names(&["gateway::Session", "version stayed 1", "raise it"]);
    fixture.replace_file("gateway/src/lib.rs", &v1);
}

fn the_v2_patch_is_checked(fixture: &Fixture) -> PathBuf {
    fixture.replace_file("gateway/src/lib.rs", V2);
    let (patch, built) = fixture.build("v2.hotpatch");
    built
        .success()
        .stderr_names(&["Migrates gateway::Session v1 -> v2: every live value"]);
    let check = fixture
        .tool(&[
            "check",
            patch.to_str().unwrap(),
            "--target",
            fixture.socket().to_str().unwrap(),
        ])
        .success();
    assert!(
        check.stdout.contains(&format!(
            "state gateway::Session v1 -> v2 ({} value(s) to migrate)",
            CLIENTS
        )),
        "check says which state it would migrate:\n{}",
        check.stdout
    );
    patch
}

/// Applies `patch` while a slow request runs; returns that request's connection.
fn the_patch_applies_under_a_request_in_flight(
    fixture: &Fixture,
    gateway: &Gateway,
    clients: &[Client],
    patch: &Path,
) -> Connection {
    let (slow, slow_started) = slow_request(&gateway.address, 800);
    std::thread::sleep(Duration::from_millis(150));
    let applied = fixture.apply(patch).success();
    let values = CLIENTS + 1;
    assert!(
        applied.stdout.contains(&format!(
            "state gateway::Session v1 -> v2 ({values} value(s) migrated)"
        )),
        "apply reports the migration of every live session:\n{}",
        applied.stdout
    );
    let (reply, mut slow_connection) = slow.join().unwrap();
    assert_eq!(
        reply.unwrap(),
        "ok v1 slept 800",
        "the request in flight completed on v1"
    );
    assert!(slow_started.elapsed() >= Duration::from_millis(800));
    assert_eq!(
        slow_connection.ask("get").unwrap(),
        "ok v2 user=slowpoke requests=3 notes= tier=Free",
        "the slow client's session was migrated after its request"
    );
    wait_until_all_see(clients, "v2");
    slow_connection
}

fn status_shows_the_migrated_sessions(fixture: &Fixture, slow_connection: &mut Connection) {
    let values = CLIENTS + 1;
    let status = fixture.status();
    let session = status
        .states
        .iter()
        .find(|s| s.name == "gateway::Session")
        .unwrap_or_else(|| panic!("status lists the sessions: {:?}", status.states));
    assert_eq!((session.version, session.values), (2, values));
    let last = status
        .history
        .last()
        .expect("a history entry for the patch");
    assert!(
        last.states
            .iter()
            .any(|s| s.name == "gateway::Session" && (s.from, s.to, s.values) == (1, 2, values)),
        "the history logs the migration: {last:?}"
    );
    let totals = slow_connection.ask("stats").unwrap();
    let total: u64 = totals
        .strip_prefix("ok v2 total=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("stats: {totals}"));
    assert!(total > 100, "the Totals singleton kept counting: {totals}");
    assert_eq!(slow_connection.ask("upgrade").unwrap(), "ok v2 tier=Pro");
}

fn the_rollback_migrates_every_session_down(
    fixture: &Fixture,
    clients: &[Client],
    slow_connection: &mut Connection,
) {
    let rolled_back = fixture.rollback().success();
    assert!(
        rolled_back
            .stdout
            .contains("state gateway::Session v2 -> v1"),
        "{}",
        rolled_back.stdout
    );
    wait_until_all_see(clients, "v1");
    assert_eq!(
        slow_connection.ask("get").unwrap(),
        "ok v1 user=slowpoke requests=6 notes="
    );
}

fn a_failing_migration_changes_nothing(fixture: &Fixture, gateway: &Gateway, clients: &[Client]) {
    let mut mallory = Connection::open(&gateway.address);
    assert_eq!(mallory.ask("login mallory").unwrap(), "ok v1 hello mallory");
    fixture.replace_file("gateway/src/lib.rs", &v2_failing_for_mallory());
    let failing = fixture.build_patch("failing.hotpatch");
    let refused = fixture.apply(&failing).failure();
    refused.stderr_names(&[
        "gateway::Session",
        "mallory's session cannot be migrated",
        "every value kept version 1",
    ]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(clients.iter().all(|c| *c.version.lock().unwrap() == "v1"));
    assert_eq!(
        mallory.ask("get").unwrap(),
        "ok v1 user=mallory requests=2 notes="
    );
}

/// Version 2 whose migration never returns.
fn v2_stuck_in_its_migration() -> String {
    let carry_over = "        // Every field carries over; sessions start on the free tier.\n";
    V2.replace(
        carry_over,
        "        while old.requests < u64::MAX {\n            std::thread::sleep(std::time::Duration::from_millis(100));\n        }\n",
    )
}

fn a_stuck_migration_is_abandoned_at_the_deadline(
    fixture: &Fixture,
    gateway: &Gateway,
    clients: &[Client],
) {
    let status_before = fixture.status();
    fixture.replace_file("gateway/src/lib.rs", &v2_stuck_in_its_migration());
    let stuck = fixture.build_patch("stuck.hotpatch");
    let started = Instant::now();
    let refused = fixture.apply(&stuck).failure();
    refused.stderr_names(&[
        "gateway::Session",
        "did not finish within",
        "every value kept version 1",
        "every value's lock was released",
        "`hotreload-migrate`",
        "leaked",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the commit gave up at its deadline (5 s), not later: {:?}",
        started.elapsed()
    );
    // Every session answers on v1, and the control socket answers.
    let mut mallory = Connection::open(&gateway.address);
    assert_eq!(mallory.ask("login mallory").unwrap(), "ok v1 hello mallory");
    std::thread::sleep(Duration::from_millis(200));
    assert!(clients.iter().all(|c| *c.version.lock().unwrap() == "v1"));
    let status = fixture.status();
    let versions = |status: &StatusReport| {
        status
            .states
            .iter()
            .map(|s| (s.name.clone(), s.version))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        versions(&status),
        versions(&status_before),
        "no value changed version"
    );
    assert_eq!(
        status.history, status_before.history,
        "nothing was committed"
    );
}

fn a_handler_looping_forever_is_named(fixture: &Fixture, gateway: &Gateway, v1: &str) {
    let stats = "        \"stats\" => format!(\"ok v1 total={total}\"),\n";
    assert!(v1.contains(stats));
    let spinning = v1.replace(
        stats,
        &format!("{stats}        \"spin\" => loop {{\n            std::hint::spin_loop();\n        }},\n"),
    );
    fixture.replace_file("gateway/src/lib.rs", &spinning);
    let patch = fixture.build_patch("spinning.hotpatch");
    fixture.apply(&patch).success();
    let id = hotreload_tests::patch_id(&patch);
    let mut spinner = Connection::open(&gateway.address);
    spinner.writer.write_all(b"spin\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let first = fixture.status();
    assert!(
        first.long_running.is_empty(),
        "a thread is named only once it has run patched code for the threshold: {:?}",
        first.long_running
    );
    std::thread::sleep(Duration::from_millis(1200));
    let status = fixture.status();
    let stuck = status
        .long_running
        .iter()
        .find(|thread| thread.patch == id)
        .unwrap_or_else(|| {
            panic!(
                "status names the spinning thread: {:?}",
                status.long_running
            )
        });
    assert!(stuck.for_ms >= 1000, "{stuck:?}");
    assert_eq!(
        stuck.function.as_deref(),
        Some("gateway::handle"),
        "{stuck:?}"
    );
    eprintln!("status names the spinning thread: {stuck:?}");
    let human = fixture
        .tool(&["status", "--target", fixture.socket().to_str().unwrap()])
        .success();
    assert!(
        human.stdout.contains("long-running in patched code") && human.stdout.contains(&stuck.name),
        "{}",
        human.describe()
    );
    let rolled_back = fixture.rollback().success();
    assert!(
        rolled_back.stdout.contains("still running:")
            && rolled_back.stdout.contains(&format!("tid {}", stuck.tid))
            && rolled_back
                .stderr
                .contains("still run the code this removed"),
        "rollback says a thread still runs the code it removed: {}",
        rolled_back.describe()
    );
}

/// Stops the clients; each must have run without an error and sent more than 20 requests.
pub(crate) fn stop_clients(stop: &AtomicBool, clients: Vec<Client>) {
    stop.store(true, Ordering::Relaxed);
    for (i, client) in clients.into_iter().enumerate() {
        let sent = client
            .thread
            .join()
            .unwrap()
            .unwrap_or_else(|error| panic!("client {i} failed: {error}"));
        assert!(sent > 20, "client {i} sent only {sent} requests");
    }
}

/// One gateway started directly from the built binary, with its own control socket, trusting
/// `trusted` keys only.
pub(crate) struct Instance {
    pub(crate) child: Child,
    pub(crate) address: String,
    pub(crate) socket: PathBuf,
}

impl Instance {
    pub(crate) fn start(fixture: &Fixture, name: &str, trusted: &str) -> Self {
        Self::start_with(fixture, name, trusted, &[])
    }

    fn start_with(fixture: &Fixture, name: &str, trusted: &str, env: &[(&str, &str)]) -> Self {
        let socket = fixture.root().join(format!("{name}.sock"));
        let mut all = vec![
            ("GATEWAY_ADDR", "127.0.0.1:0"),
            ("HOTRELOAD_CONTROL_SOCKET", socket.to_str().unwrap()),
            ("HOTRELOAD_TRUSTED_KEYS", trusted),
        ];
        all.extend_from_slice(env);
        let (child, lines) = spawn_app(fixture, &all);
        let address = listening_address(&lines, Duration::from_secs(30), String::new);
        Instance {
            child,
            address,
            socket,
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A copy of `patch` claiming to be for another build, signed with `key_file`'s key.
fn foreign_build(patch: &Path, key_file: &Path) -> PathBuf {
    let parsed = PatchFile::parse(&std::fs::read(patch).unwrap()).unwrap();
    let mut manifest = parsed.manifest;
    manifest.base.build_id = "00".repeat(20);
    let mut foreign = PatchFile::new(manifest, parsed.library);
    let seed = std::fs::read_to_string(key_file).unwrap();
    let seed: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&seed.trim()[i * 2..i * 2 + 2], 16).unwrap())
        .collect();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed.try_into().unwrap());
    use ed25519_dalek::Signer as _;
    foreign.signature = Some(PatchSignature {
        public_key: key.verifying_key().to_bytes(),
        signature: key.sign(&foreign.signed_message()).to_bytes(),
    });
    let path = patch.with_file_name("foreign.hotpatch");
    std::fs::write(&path, foreign.to_bytes()).unwrap();
    path
}

#[test]
fn three_gateways_take_a_signed_patch_in_batches_with_clients_connected() {
    let fixture = Fixture::gateway(locations!(), Profile::Dev);
    // `run` builds the host and records the base; the instances run that same binary.
    drop(Gateway::start(&fixture));
    let (key, trusted, other_key) = two_keys(&fixture);

    let instances: Vec<Instance> = ["gw-a", "gw-b", "gw-c"]
        .iter()
        .map(|name| Instance::start(&fixture, name, &trusted))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<Client> = (0..12)
        .map(|i| start_client(instances[i % 3].address.clone(), i, Arc::clone(&stop)))
        .collect();
    wait_until_all_see(&clients, "v1");
    let sockets: Vec<String> = instances
        .iter()
        .map(|i| i.socket.display().to_string())
        .collect();
    let roll_out = |patch: &Path, health: &str| {
        // The patch migrates sessions, so the functions handling them that are not `#[hot]`
        // change too: their entries are redirected, which a production apply must allow.
        let mut args = vec![
            "apply",
            patch.to_str().unwrap(),
            "--batches",
            "1,100%",
            "--allow-entry-redirects",
        ];
        for socket in &sockets {
            args.extend(["--target", socket.as_str()]);
        }
        args.extend(["--health", health]);
        fixture.tool(&args)
    };

    // Unsigned, signed by an untrusted key, or for another build: refused everywhere before
    // anything is applied.
    unverified_patches_are_refused_everywhere(&fixture, &roll_out, &clients, &key, &other_key);
    // Signed by the trusted key: one instance, then all; sessions migrate on each.
    let signed = a_signed_patch_rolls_out_in_batches(&fixture, &roll_out, &clients, &key);
    // A new instance with the approved patch in its patch directory applies it in `init()`,
    // before it serves: its first session is already a v2 session.
    let _restarted = a_new_instance_applies_the_approved_patch_first(&fixture, &signed, &trusted);
    // A failing health check after the first batch rolls it back; the others are never touched.
    a_failing_health_check_rolls_the_first_batch_back(&fixture, &roll_out, &clients, &key);

    stop_clients(&stop, clients);
}

/// How the test rolls a patch out to the three gateways, with a health command.
type RollOut<'a> = dyn Fn(&Path, &str) -> ToolOutput + 'a;

/// A release key (its file and public key) and another key, made by `keygen`.
pub(crate) fn two_keys(fixture: &Fixture) -> (PathBuf, String, PathBuf) {
    let key = fixture.root().join("release.key");
    let trusted = fixture
        .tool(&["keygen", "-o", key.to_str().unwrap()])
        .success()
        .stdout
        .trim()
        .to_owned();
    let other_key = fixture.root().join("other.key");
    fixture
        .tool(&["keygen", "-o", other_key.to_str().unwrap()])
        .success();
    (key, trusted, other_key)
}

fn unverified_patches_are_refused_everywhere(
    fixture: &Fixture,
    roll_out: &RollOut,
    clients: &[Client],
    key: &Path,
    other_key: &Path,
) {
    fixture.replace_file("gateway/src/lib.rs", V2);
    let unsigned = fixture.build_patch("unsigned.hotpatch");
    roll_out(&unsigned, "true")
        .failure()
        .stderr_names(&["not signed", "nothing was applied"]);
    let (untrusted, built) = fixture.build_with(
        "untrusted.hotpatch",
        &["--sign", other_key.to_str().unwrap()],
    );
    built.success();
    roll_out(&untrusted, "true")
        .failure()
        .stderr_names(&["does not trust", "nothing was applied"]);
    roll_out(&foreign_build(&unsigned, key), "true")
        .failure()
        .stderr_names(&["was built for build 0000", "nothing was applied"]);
    std::thread::sleep(Duration::from_millis(100));
    assert!(clients.iter().all(|c| *c.version.lock().unwrap() == "v1"));
}

fn a_signed_patch_rolls_out_in_batches(
    fixture: &Fixture,
    roll_out: &RollOut,
    clients: &[Client],
    key: &Path,
) -> PathBuf {
    let (signed, built) = fixture.build_with("v2.hotpatch", &["--sign", key.to_str().unwrap()]);
    built.success();
    let rolled = roll_out(&signed, "true").success();
    assert_eq!(
        rolled
            .stdout
            .matches("state gateway::Session v1 -> v2 (4 value(s) migrated)")
            .count(),
        3,
        "each instance migrated its four sessions: {}",
        rolled.describe()
    );
    wait_until_all_see(clients, "v2");
    signed
}

/// Starts a fourth gateway with `signed` approved; returns it, still running.
fn a_new_instance_applies_the_approved_patch_first(
    fixture: &Fixture,
    signed: &Path,
    trusted: &str,
) -> Instance {
    let approved = fixture.root().join("approved");
    std::fs::create_dir_all(&approved).unwrap();
    std::fs::copy(signed, approved.join("v2.hotpatch")).unwrap();
    let restarted = Instance::start_with(
        fixture,
        "gw-d",
        trusted,
        &[
            ("HOTRELOAD_PATCH_DIR", approved.to_str().unwrap()),
            // As the operator allowed them for the running instances.
            ("HOTRELOAD_ALLOW_ENTRY_REDIRECTS", "1"),
        ],
    );
    let mut fresh = Connection::open(&restarted.address);
    assert_eq!(fresh.ask("login dora").unwrap(), "ok v2 hello dora");
    assert_eq!(
        fresh.ask("get").unwrap(),
        "ok v2 user=dora requests=2 notes= tier=Free"
    );
    restarted
}

fn a_failing_health_check_rolls_the_first_batch_back(
    fixture: &Fixture,
    roll_out: &RollOut,
    clients: &[Client],
    key: &Path,
) {
    fixture.replace_file("gateway/src/lib.rs", &V2.replace("ok v2", "ok v3"));
    let (v3, built) = fixture.build_with("v3.hotpatch", &["--sign", key.to_str().unwrap()]);
    built.success();
    let failed = roll_out(&v3, "exit 1").failure();
    assert!(
        failed.stdout.contains("rolled back") && failed.stdout.contains("untouched"),
        "{}",
        failed.describe()
    );
    std::thread::sleep(Duration::from_millis(200));
    wait_until_all_see(clients, "v2");
}

#[test]
fn a_plain_enum_held_by_sessions_changes_with_the_session_s_version() {
    let fixture = Fixture::gateway(locations!(), Profile::Dev);
    // The running build is version 2: sessions hold a `Tier`.
    fixture.replace_file("gateway/src/lib.rs", V2);
    let gateway = Gateway::start(&fixture);
    let mut client = Connection::open(&gateway.address);
    assert_eq!(client.ask("login ada").unwrap(), "ok v2 hello ada");
    assert_eq!(client.ask("upgrade").unwrap(), "ok v2 tier=Pro");

    // `Tier` gains a variant while `Session` keeps its version: refused, naming what to bump.
    let tier_v2 = "    Free,\n    Pro,\n}";
    assert!(V2.contains(tier_v2));
    fixture.replace_file(
        "gateway/src/lib.rs",
        &V2.replace(tier_v2, "    Free,\n    Pro,\n    Enterprise,\n}"),
    );
    fixture
        .build_refused("unbumped.hotpatch", "held-type-changed")
        .stderr_names(&[
            "`gateway::Tier` changed",
            "raise `gateway::Session`'s version",
        ]);

    // With `Session` at version 3 the sessions are rebuilt with the new `Tier`.
    fixture.replace_file("gateway/src/lib.rs", V3);
    let (patch, built) = fixture.build("v3.hotpatch");
    built.success().stderr_names(&[
        "`gateway::Tier` changed; allowed",
        "Migrates gateway::Session v2 -> v3",
    ]);
    fixture.apply(&patch).success();
    assert_eq!(
        client.ask("get").unwrap(),
        "ok v3 user=ada requests=3 notes= tier=Pro"
    );
    assert_eq!(client.ask("enterprise").unwrap(), "ok v3 tier=Enterprise");

    // Rollback: version 2 has no enterprise tier; the down migration makes it Pro.
    fixture.rollback().success();
    assert_eq!(
        client.ask("get").unwrap(),
        "ok v2 user=ada requests=5 notes= tier=Pro"
    );
}

/// Waits until the tool's stderr, after `from` bytes, contains `needle`.
fn wait_for_tool(gateway: &Gateway, from: usize, needle: &str) -> String {
    wait_for_text(|| gateway.stderr_text(), from, needle)
}

#[test]
fn watch_migrates_sessions_on_save_and_back_on_revert() {
    let fixture = Fixture::gateway(locations!(), Profile::Dev);
    let gateway = Gateway::start_with(&fixture, "watch");
    wait_for_tool(&gateway, 0, "Connected");
    let mut client = Connection::open(&gateway.address);
    assert_eq!(client.ask("login ada").unwrap(), "ok v1 hello ada");
    assert_eq!(client.ask("note hi").unwrap(), "ok v1 notes=1");

    let v1 = std::fs::read_to_string(fixture.root().join("gateway/src/lib.rs")).unwrap();
    let mark = gateway.stderr_text().len();
    fixture.replace_file("gateway/src/lib.rs", V2);
    wait_for_tool(
        &gateway,
        mark,
        "Migrated gateway::Session v1 -> v2: 1 value(s)",
    );
    assert_eq!(
        client.ask("get").unwrap(),
        "ok v2 user=ada requests=3 notes=hi tier=Free"
    );

    // Reverting the file is patched like any edit: the session goes back down to version 1.
    let mark = gateway.stderr_text().len();
    fixture.replace_file("gateway/src/lib.rs", &v1);
    wait_for_tool(
        &gateway,
        mark,
        "Migrated gateway::Session v2 -> v1: 1 value(s)",
    );
    assert_eq!(
        client.ask("get").unwrap(),
        "ok v1 user=ada requests=4 notes=hi"
    );
    let said = gateway.stderr_text();
    assert!(
        !said.contains("Restarting"),
        "a state change is patched, not restarted:\n{said}"
    );
}
